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
	// Head returns the object at key; errors.Is(err, io/fs.ErrNotExist)
	// when there is none.
	Head(ctx context.Context, key string) (bucket.Object, error)
	// List returns one page of the objects and sub-prefixes directly in dir.
	List(ctx context.Context, dir, continuation string) (bucket.Page, error)
	// HasChildren reports whether anything is stored under dir.
	HasChildren(ctx context.Context, dir string) (bool, error)
	// ListRecursive calls fn for every object under dir, at any depth.
	ListRecursive(ctx context.Context, dir string, fn func(bucket.Object) error) error
	// Get returns n bytes of key from off (to the end when n < 0), failing
	// with bucket.ErrPrecondition if its ETag is no longer ifMatch.
	Get(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error)
	// Put writes an object in one request.
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, meta map[string]string) (bucket.Object, error)
	// Upload writes an object with a multipart upload.
	Upload(ctx context.Context, key string, src io.ReaderAt, size int64, meta map[string]string, opts bucket.UploadOptions) (bucket.Object, error)
	// StartStream begins a multipart upload fed part by part.
	StartStream(ctx context.Context, key string, meta map[string]string, opts bucket.UploadOptions) (*bucket.Stream, error)
	// AbortUpload abandons an incomplete multipart upload.
	AbortUpload(ctx context.Context, key, uploadID string) error
	// Copy copies src to dst on the server; meta nil keeps the metadata.
	Copy(ctx context.Context, src, dst string, meta map[string]string) (bucket.Object, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}
