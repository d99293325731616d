package vfs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"mount-ws/bucket"
)

// TreeStore is what renaming a directory needs of the storage.
type TreeStore interface {
	// CheckKey reports, without a request, whether key can name an object.
	CheckKey(key string) error
	// ListRecursive calls fn for every object under dir, at any depth.
	ListRecursive(ctx context.Context, dir string, fn func(bucket.Object) error) error
	Header
	// Copy copies src to dst on the server; meta nil keeps the metadata.
	Copy(ctx context.Context, src, dst string, meta *bucket.Meta, srcETag string) (bucket.Object, error)
	// Put writes an object in one request.
	Put(ctx context.Context, key string, body io.ReadSeeker, size int64, meta bucket.Meta) (bucket.Object, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// renameParallel is how many copies, then deletes, a directory rename
// runs at once.
const renameParallel = 16

// RenameError is a directory rename that failed after it began copying:
// how far it got, and why it stopped.
type RenameError struct {
	From, To        string
	Copied, Objects int  // objects copied, of those under From
	AllCopied       bool // every copy was made; deleting an original failed
	Err             error
}

func (e *RenameError) Error() string {
	if e.AllCopied {
		return fmt.Sprintf("rename %s to %s: all %d objects copied, but some are still also under the old name: %v", e.From, e.To, e.Objects, e.Err)
	}
	return fmt.Sprintf("rename %s to %s failed after copying %d of %d objects; every object is still under the old name: %v", e.From, e.To, e.Copied, e.Objects, e.Err)
}

func (e *RenameError) Unwrap() error { return e.Err }

// RenameTree moves every object under the prefix src (a directory's key
// with its "/") to dst: copies on the server first, and deletes the
// originals only once every copy succeeded, so that a failure part-way
// leaves everything under the old name (and some also under the new
// one). Every new key is checked before anything is copied.
func RenameTree(ctx context.Context, s TreeStore, src, dst string) error {
	var keys []string
	err := s.ListRecursive(ctx, src, func(o bucket.Object) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", src, err)
	}
	for _, k := range keys {
		if err := s.CheckKey(dst + strings.TrimPrefix(k, src)); err != nil {
			return err
		}
	}
	var copied atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(renameParallel)
	for _, k := range keys {
		g.Go(func() error {
			if err := copyKey(gctx, s, k, dst+strings.TrimPrefix(k, src), k == src); err != nil {
				return err
			}
			copied.Add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return &RenameError{From: src, To: dst, Copied: int(copied.Load()), Objects: len(keys), Err: err}
	}
	// One failed delete does not stop the others: each one left is an
	// object the user sees twice.
	var del errgroup.Group
	del.SetLimit(renameParallel)
	for _, k := range keys {
		del.Go(func() error { return s.Delete(ctx, k) })
	}
	if err := del.Wait(); err != nil {
		return &RenameError{From: src, To: dst, Copied: len(keys), Objects: len(keys), AllCopied: true, Err: err}
	}
	return nil
}

// copyKey copies one object on the server. Directory markers are written
// anew instead (with the same metadata): S3 servers refuse to copy onto a
// key ending in "/". The marker of the renamed directory itself (top)
// gets a new ctime, as a rename gives it; what it holds keeps theirs.
func copyKey(ctx context.Context, s TreeStore, src, dst string, top bool) error {
	if !strings.HasSuffix(src, "/") {
		_, err := s.Copy(ctx, src, dst, nil, "")
		return err
	}
	o, err := s.Head(ctx, src)
	if err != nil {
		return err
	}
	meta := bucket.Meta{User: o.Metadata, ContentType: o.ContentType}
	if top {
		e := EntryFromObject(o)
		e.Dir = true
		e.Touch(false)
		meta = ObjectMeta(e, dst, false)
	}
	_, err = s.Put(ctx, dst, bytes.NewReader(nil), 0, meta)
	return err
}
