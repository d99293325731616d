package fs

import (
	"context"
	"io"

	"mount-ws/bucket"
)

// Bucket is what the filesystem needs of the workspace's storage. Keys are
// relative to the workspace prefix; directories are given as "" (the root)
// or "a/b/". *bucket.Bucket implements it.
type Bucket interface {
	// Head returns the object at key; errors.Is(err, io/fs.ErrNotExist)
	// when there is none.
	Head(ctx context.Context, key string) (bucket.Object, error)
	// List returns one page of the objects and sub-prefixes directly in dir.
	List(ctx context.Context, dir, continuation string) (bucket.Page, error)
	// Get returns n bytes of key from off (fewer at the end of the object),
	// failing with bucket.ErrPrecondition if its ETag is no longer ifMatch.
	Get(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error)
}
