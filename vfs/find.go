package vfs

import (
	"context"
	"errors"
	iofs "io/fs"

	"mount-ws/bucket"
)

// FindStore is what finding a name needs of the storage.
type FindStore interface {
	Header
	// ListFrom returns one page, of at most max keys, of the keys that
	// begin with key, at any depth.
	ListFrom(ctx context.Context, key string, max int) (bucket.KeysFrom, error)
	// ProbeDir reports whether anything is stored under dir, and whether
	// its marker is.
	ProbeDir(ctx context.Context, dir string) (bucket.DirProbe, error)
	// Peek is Head with the object's first max bytes, in one GET.
	Peek(ctx context.Context, key string, max int64) (bucket.Object, []byte, error)
}

// Sizes of what a lookup asks for.
const (
	// ProbeKeys is the size of a lookup's page of keys. Larger pages
	// answer more of a path's next lookups, but every key listed costs
	// the server time: 1,000 made `cat a/b/file` 3 requests instead of 4
	// on the local gateway, and the first lookup of every directory 0.1 s
	// slower (S3's full pages are slow too); 100 costs what a HEAD does.
	ProbeKeys = 100
	// PeekMax is the largest file a lookup fetches whole (ReadLearned): a
	// GET of it costs what a HEAD does. BodiesLimit bounds what Bodies
	// keeps of them.
	PeekMax     = 128 << 10
	BodiesLimit = 64 * PeekMax
)

// Finder answers what a name is when no listing knows it, from the
// storage.
type Finder struct {
	Store FindStore
	// Dirs learns what a lookup's page shows of the directories below the
	// name, for the lookups of a path that follow.
	Dirs *DirCaches
	// Bodies keeps the bytes of the small files lookups fetch; nil: a
	// lookup reads metadata only (with a HEAD).
	Bodies *Bodies
	// Skip is told of keys that cannot be shown.
	Skip SkipFunc
}

// Probe asks whether name, in the directory dirKey, is a file, a
// directory or nothing: one page of the keys that begin with its key
// (ReadProbe), then, for its metadata, ReadLearned of what the page
// showed. A directory wins over a file of the same name.
func (f *Finder) Probe(ctx context.Context, dirKey, name string) (Entry, bool, error) {
	if NameProblem(name) != "" {
		return Entry{}, false, nil
	}
	key := ChildKey(dirKey, name)
	since := f.Dirs.Changes()
	page, err := f.Store.ListFrom(ctx, key, ProbeKeys)
	if err != nil {
		return Entry{}, false, err
	}
	pr := ReadProbe(dirKey, name, page, f.Skip)
	f.Dirs.Learn(pr.Learned, SeedsFrom(key, page), since)
	if !pr.Sure {
		// Keys like name.txt filled the page before name/ was reached.
		under, err := f.Store.ProbeDir(ctx, key+"/")
		if err != nil {
			return Entry{}, false, err
		}
		pr.Dir, pr.Marker = under.Exists, under.Marker
	}
	switch {
	case pr.Dir:
		if pr.File != nil {
			f.Skip(key, "a directory of the same name hides this file")
		}
		return f.ReadLearned(ctx, key, Entry{Dir: true, Meta: !pr.Marker})
	case pr.File != nil:
		return f.ReadLearned(ctx, key, Entry{Size: pr.File.Size})
	}
	return Entry{}, false, nil
}

// ReadLearned completes what a page of keys showed of key (e) with its
// metadata: a HEAD of the object, or of the directory's marker; a
// directory without one (e.Meta) has the defaults. A small file is asked
// with a GET instead, which answers as much and brings its bytes along
// for the read that usually follows (Bodies).
func (f *Finder) ReadLearned(ctx context.Context, key string, e Entry) (Entry, bool, error) {
	if e.Dir {
		if e.Meta {
			return Entry{Dir: true, Meta: true}, true, nil
		}
		marker, err := MarkerEntry(ctx, f.Store, key)
		return marker, err == nil, err
	}
	var o bucket.Object
	var err error
	peeked := false
	if e.Size > 0 && e.Size <= PeekMax && f.Bodies != nil {
		var data []byte
		o, data, err = f.Store.Peek(ctx, key, PeekMax)
		switch {
		case err == nil:
			f.Bodies.Keep(key, o.ETag, data, int64(len(data)) == o.Size)
			peeked = true
		case errors.Is(err, iofs.ErrNotExist):
			peeked = true // deleted since the LIST
		}
	}
	if !peeked {
		// A GET that failed (other than for a missing object), or was
		// interrupted (a caller's store may leave it cancellable), leaves
		// the answer to a HEAD: stat need not fail for what only a read
		// needs.
		o, err = f.Store.Head(ctx, key)
	}
	if errors.Is(err, iofs.ErrNotExist) {
		return Entry{}, false, nil // deleted since
	}
	if err != nil {
		return Entry{}, false, err
	}
	return EntryFromObject(o), true, nil
}
