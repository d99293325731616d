package fs

import (
	"context"
	"io"

	"mount-ws/bucket"
)

// Bucket is what the filesystem needs of the workspace's storage. Keys are
// relative to the workspace prefix; directories are given as "" (the root)
// or "a/b/". *bucket.Bucket implements it; see there for the contracts.
type Bucket interface {
	// CheckKey reports, without a request, whether key can name an
	// object (bucket.ErrKeyTooLong when it is too long).
	CheckKey(key string) error
	// Head returns the object at key; errors.Is(err, io/fs.ErrNotExist)
	// when there is none.
	Head(ctx context.Context, key string) (bucket.Object, error)
	// Peek is Head with the object's first max bytes, in one GET.
	Peek(ctx context.Context, key string, max int64) (bucket.Object, []byte, error)
	// List returns one page of the objects and sub-prefixes directly in dir.
	List(ctx context.Context, dir, continuation string) (bucket.Page, error)
	// ListAfter is List's first page from the first key after after.
	ListAfter(ctx context.Context, dir, after string) (bucket.Page, error)
	// ProbeDir reports whether anything is stored under dir, and whether
	// its marker is.
	ProbeDir(ctx context.Context, dir string) (bucket.DirProbe, error)
	// ListFrom returns one page, of at most max keys, of the keys that
	// begin with key, at any depth.
	ListFrom(ctx context.Context, key string, max int) (bucket.KeysFrom, error)
	// ListRecursive calls fn for every object under dir, at any depth.
	ListRecursive(ctx context.Context, dir string, fn func(bucket.Object) error) error
	// Get returns n bytes of key from off (to the end when n < 0), failing
	// with bucket.ErrPrecondition if its ETag is no longer ifMatch.
	Get(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error)
	// Put writes an object in one request.
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, meta bucket.Meta) (bucket.Object, error)
	// Upload writes an object with a multipart upload.
	Upload(ctx context.Context, key string, src io.ReaderAt, size int64, meta bucket.Meta, opts bucket.UploadOptions) (bucket.Object, error)
	// StartStream begins a multipart upload fed part by part.
	StartStream(ctx context.Context, key string, meta bucket.Meta, opts bucket.UploadOptions) (*bucket.Stream, error)
	// AbortUpload abandons an incomplete multipart upload.
	AbortUpload(ctx context.Context, key, uploadID string) error
	// Copy copies src to dst on the server; meta nil keeps the metadata.
	Copy(ctx context.Context, src, dst string, meta *bucket.Meta, srcETag string) (bucket.Object, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// uncancelled runs every request but Get and Peek on a context that
// cannot be cancelled. The kernel interrupts a FUSE request when the
// calling thread gets any signal with a handler (Go's runtime signals its
// threads all the time), and go-fuse then cancels the request's context.
// A lookup, rename, unlink or upload that fails with EINTR, possibly
// half-way, is worse than one that completes: programs rarely retry them
// (Go's os.Rename does not). GETs stay cancellable: a reader stuck on a
// slow GET can be woken, and reads are safe to retry; a lookup whose GET
// (Peek) is interrupted asks with a HEAD instead. A fatal signal still
// ends the caller once the request is answered (the kernel waits for a
// request it sent).
type uncancelled struct{ Bucket }

func (u uncancelled) Head(ctx context.Context, key string) (bucket.Object, error) {
	return u.Bucket.Head(context.WithoutCancel(ctx), key)
}

// cancellableKey marks the context of background work (FS.background),
// whose listings stay cancellable: no program waits for them, and Close
// must not wait for a slow server.
type cancellableKey struct{}

func (u uncancelled) List(ctx context.Context, dir, continuation string) (bucket.Page, error) {
	if ctx.Value(cancellableKey{}) == nil {
		ctx = context.WithoutCancel(ctx)
	}
	return u.Bucket.List(ctx, dir, continuation)
}

func (u uncancelled) ListAfter(ctx context.Context, dir, after string) (bucket.Page, error) {
	if ctx.Value(cancellableKey{}) == nil {
		ctx = context.WithoutCancel(ctx)
	}
	return u.Bucket.ListAfter(ctx, dir, after)
}

func (u uncancelled) ProbeDir(ctx context.Context, dir string) (bucket.DirProbe, error) {
	return u.Bucket.ProbeDir(context.WithoutCancel(ctx), dir)
}

func (u uncancelled) ListFrom(ctx context.Context, key string, max int) (bucket.KeysFrom, error) {
	return u.Bucket.ListFrom(context.WithoutCancel(ctx), key, max)
}

func (u uncancelled) ListRecursive(ctx context.Context, dir string, fn func(bucket.Object) error) error {
	return u.Bucket.ListRecursive(context.WithoutCancel(ctx), dir, fn)
}

func (u uncancelled) Put(ctx context.Context, key string, body io.ReadSeeker, size int64, meta bucket.Meta) (bucket.Object, error) {
	return u.Bucket.Put(context.WithoutCancel(ctx), key, body, size, meta)
}

func (u uncancelled) Upload(ctx context.Context, key string, src io.ReaderAt, size int64, meta bucket.Meta, opts bucket.UploadOptions) (bucket.Object, error) {
	return u.Bucket.Upload(context.WithoutCancel(ctx), key, src, size, meta, opts)
}

func (u uncancelled) StartStream(ctx context.Context, key string, meta bucket.Meta, opts bucket.UploadOptions) (*bucket.Stream, error) {
	return u.Bucket.StartStream(context.WithoutCancel(ctx), key, meta, opts)
}

func (u uncancelled) AbortUpload(ctx context.Context, key, uploadID string) error {
	return u.Bucket.AbortUpload(context.WithoutCancel(ctx), key, uploadID)
}

func (u uncancelled) Copy(ctx context.Context, src, dst string, meta *bucket.Meta, srcETag string) (bucket.Object, error) {
	return u.Bucket.Copy(context.WithoutCancel(ctx), src, dst, meta, srcETag)
}

func (u uncancelled) Delete(ctx context.Context, key string) error {
	return u.Bucket.Delete(context.WithoutCancel(ctx), key)
}
