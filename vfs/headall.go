package vfs

import (
	"context"
	"errors"
	iofs "io/fs"

	"golang.org/x/sync/errgroup"

	"mount-ws/bucket"
)

// Header is what reading metadata needs of the storage.
type Header interface {
	// Head returns the object at key; errors.Is(err, io/fs.ErrNotExist)
	// when there is none.
	Head(ctx context.Context, key string) (bucket.Object, error)
}

// headParallel is how many HEADs HeadAll runs at once.
const headParallel = 32

// MarkerEntry describes the directory key from its marker object, which
// carries its stored mode and times, or with the defaults when it has
// none (an implicit directory).
func MarkerEntry(ctx context.Context, h Header, key string) (Entry, error) {
	o, err := h.Head(ctx, key+"/")
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return Entry{Dir: true, Meta: true}, nil
	case err != nil:
		return Entry{}, err
	}
	e := EntryFromObject(o)
	e.Dir, e.Size, e.ETag = true, 0, ""
	return e, nil
}

// HeadAll reads the metadata of the entries of the directory whose keys
// begin with prefix, by name, with a HEAD of each object or directory
// marker, many at once. A directory without a marker has no metadata:
// its entry comes back marked as read, with the defaults; a file gone
// comes back Gone. An entry whose HEAD fails is in failed instead, with
// why.
func HeadAll(ctx context.Context, h Header, prefix string, entries map[string]Entry) (found map[string]MetaResult, failed map[string]error) {
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	results := make([]*MetaResult, len(names)) // each goroutine writes its own slot
	errs := make([]error, len(names))
	var g errgroup.Group
	g.SetLimit(headParallel)
	for i, name := range names {
		e := entries[name]
		key := prefix + name
		if e.Dir {
			key += "/"
		}
		g.Go(func() error {
			o, err := h.Head(ctx, key)
			switch {
			case errors.Is(err, iofs.ErrNotExist) && e.Dir:
				e.Meta = true // an implicit directory
				results[i] = &MetaResult{Entry: e}
			case errors.Is(err, iofs.ErrNotExist):
				results[i] = &MetaResult{Entry: e, Gone: true}
			case err != nil:
				errs[i] = err
			default:
				read := EntryFromObject(o)
				read.Dir = e.Dir
				if read.Dir {
					read.Size, read.ETag = 0, ""
				}
				results[i] = &MetaResult{Entry: read}
			}
			return nil
		})
	}
	g.Wait()
	found = make(map[string]MetaResult, len(results))
	for i, r := range results {
		if r != nil {
			found[names[i]] = *r
			continue
		}
		if failed == nil {
			failed = make(map[string]error)
		}
		failed[names[i]] = errs[i]
	}
	return found, failed
}
