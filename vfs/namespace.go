package vfs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"

	"mount-ws/bucket"
)

// NamespaceStore is what creating and removing names needs of the
// storage.
type NamespaceStore interface {
	FileStore
	TreeStore // Put, and a directory's rename
	// List returns one page of the objects and sub-prefixes directly in
	// dir.
	List(ctx context.Context, dir, continuation string) (bucket.Page, error)
	// ProbeDir reports whether anything is stored under dir, and whether
	// its marker is.
	ProbeDir(ctx context.Context, dir string) (bucket.DirProbe, error)
}

// Namespace creates and removes the mount's names in the storage, and
// shows each change in the directories' listings at once. Keys are
// paths: "" is the root, "a/b" a file or directory (whose marker object
// is "a/b/").
type Namespace struct {
	store NamespaceStore
	dirs  *DirCaches // the files' (Files.dirs)
	files *Files
}

// NewNamespace returns the namespace of a mount's files, whose store and
// directory listings it shares.
func NewNamespace(store NamespaceStore, files *Files) *Namespace {
	return &Namespace{store: store, dirs: files.dirs, files: files}
}

// MakeDir creates the directory key, described by e (its mode, owner and
// times), as a marker object "key/" carrying them.
func (ns *Namespace) MakeDir(ctx context.Context, key string, e Entry) (Entry, error) {
	return ns.putMarker(ctx, key, e)
}

// putMarker stores e, a directory's attributes, on its marker object, and
// shows them in its parent's listing.
func (ns *Namespace) putMarker(ctx context.Context, key string, e Entry) (Entry, error) {
	e.Meta, e.Dir = true, true
	if _, err := ns.store.Put(ctx, key+"/", bytes.NewReader(nil), 0, ObjectMeta(e, key+"/", false)); err != nil {
		return Entry{}, err
	}
	ns.dirs.Set(key, &e)
	return e, nil
}

// MakeNode creates a special file (FIFO, socket, device node, or an empty
// regular file) as s3fs stores one: an empty object whose mode metadata
// carries the file type, and rdev the device.
func (ns *Namespace) MakeNode(ctx context.Context, key string, e Entry) (Entry, error) {
	o, err := ns.store.Put(ctx, key, bytes.NewReader(nil), 0, ObjectMeta(e, key, true))
	if err != nil {
		return Entry{}, err
	}
	e.ETag = o.ETag
	ns.dirs.Set(key, &e)
	return e, nil
}

// MakeLink creates a symbolic link as s3fs stores one: the object holds
// the target, its mode metadata says S_IFLNK.
func (ns *Namespace) MakeLink(ctx context.Context, key, target string, e Entry) (Entry, error) {
	o, err := ns.store.Put(ctx, key, strings.NewReader(target), int64(len(target)), ObjectMeta(e, key, true))
	if err != nil {
		return Entry{}, err
	}
	e.Size, e.ETag = o.Size, o.ETag
	e.SetLinkTarget(target)
	ns.dirs.Set(key, &e)
	return e, nil
}

// Remove deletes the file key; f is its File, nil when it has none in
// memory. An open file's unsaved data goes with it, as on any filesystem;
// if the DELETE fails, the file and its unsaved data stay, still queued
// for upload.
func (ns *Namespace) Remove(ctx context.Context, key string, f *File) error {
	held := ns.files.Hold(f)
	defer held.Release()
	if err := ns.store.Delete(ctx, key); err != nil {
		return err
	}
	// Marked deleted under its io lock: no save of it can land now.
	held.Gone()
	ns.dirs.Set(key, nil)
	return nil
}

// IsEmptyDir reports whether the directory key holds nothing but its
// marker, in S3 and among files being written here (local, the Files
// of its children in memory).
func (ns *Namespace) IsEmptyDir(ctx context.Context, key string, local []*File) (bool, error) {
	for _, f := range local {
		if _, unsaved := f.LocalEntry(); unsaved {
			return false, nil
		}
	}
	marker := key + "/"
	page, err := ns.store.List(ctx, marker, "")
	if err != nil {
		return false, err
	}
	for _, o := range page.Objects {
		if o.Key != marker {
			return false, nil
		}
	}
	return len(page.Prefixes) == 0, nil
}

// ErrNotEmpty: a directory to remove, or to be replaced by a rename,
// holds something.
var ErrNotEmpty = errors.New("directory not empty")

// RemoveDir removes the directory key if it is empty (IsEmptyDir), by
// deleting its marker (an implicit directory has none); ErrNotEmpty if
// it is not.
func (ns *Namespace) RemoveDir(ctx context.Context, key string, local []*File) error {
	empty, err := ns.IsEmptyDir(ctx, key, local)
	if err != nil {
		return err
	}
	if !empty {
		return ErrNotEmpty
	}
	if err := ns.store.Delete(ctx, key+"/"); err != nil {
		return err
	}
	ns.dirs.Drop(key)
	ns.dirs.Set(key, nil)
	return nil
}

// DirMeta returns the directory key's attributes as its marker stores
// them (MarkerEntry); the root has none.
func (ns *Namespace) DirMeta(ctx context.Context, key string) (Entry, error) {
	return MarkerEntry(ctx, ns.store, key)
}

// SaveDirMeta stores e, the directory key's new attributes, on its marker
// (the root has none: its changes last until unmount), and shows them in
// its parent's listing.
func (ns *Namespace) SaveDirMeta(ctx context.Context, key string, e Entry) (Entry, error) {
	if key == "" {
		e.Meta, e.Dir = true, true
		return e, nil
	}
	return ns.putMarker(ctx, key, e)
}

// Vanished reports whether the implicit directory key (one without a
// marker object) is gone, its last child removed, as it then is in S3;
// its listing is dropped and its parent's no longer shows it. It asks S3
// only when what the directory's listing knows does not already show
// some children remain. c is the directory's cache.
func (ns *Namespace) Vanished(ctx context.Context, key string, c *DirCache) bool {
	if left, known := c.Len(ns.files.ttl); known && left > 0 {
		return false
	}
	if left, err := ns.store.ProbeDir(ctx, key+"/"); err != nil || left.Exists {
		return false // a marker or other children keep it
	}
	ns.dirs.Set(key, nil)
	ns.dirs.Drop(key) // gone: a directory made there later starts afresh
	return true
}

// Errors of a rename, as rename(2) names them.
var (
	ErrExists = errors.New("the target exists") // RENAME_NOREPLACE
	ErrNotDir = errors.New("a directory cannot replace a file")
	ErrIsDir  = errors.New("a file cannot replace a directory")
)

// Renaming is what the adapter knows of a rename's two names.
type Renaming struct {
	From, To  string
	Source    Entry  // what From is
	Target    *Entry // what To holds now; nil: nothing
	NoReplace bool   // RENAME_NOREPLACE: fail with ErrExists if To exists
	// The Files in memory: From's and To's when they are files (nil if
	// none), and those under From when it is a directory.
	SourceFile, TargetFile *File
	SourceTree             []*File
	// TargetTree is the Files in memory under To, a directory that From
	// replaces if it is empty.
	TargetTree []*File
}

// Rename moves From to To. S3 has no rename: a file is copied on the
// server (or, with unsaved changes, uploaded under the new name) and
// then deleted (Files.RenameFile); a directory is every object under it
// copied, then deleted (RenameTree). Objects are deleted only once every
// copy succeeded, so a failure part-way leaves everything reachable under
// the old name (and some also under the new one), and says so in the
// log. The files being moved are held throughout, so that no save lands
// under the old name, and their queued data follows them.
//
// It returns the entry now at To. replaced reports, with an error, that
// To holds From's copy although From could not be deleted: the file To
// held is gone.
func (ns *Namespace) Rename(ctx context.Context, r Renaming) (moved Entry, replaced bool, err error) {
	if r.Target != nil {
		switch {
		case r.NoReplace:
			return Entry{}, false, ErrExists
		case r.Source.Dir && !r.Target.Dir:
			return Entry{}, false, ErrNotDir
		case !r.Source.Dir && r.Target.Dir:
			return Entry{}, false, ErrIsDir
		}
	}
	moved = r.Source
	if r.Source.Dir {
		if r.Target != nil {
			empty, err := ns.IsEmptyDir(ctx, r.To, r.TargetTree)
			if err != nil {
				return Entry{}, false, err
			}
			if !empty {
				return Entry{}, false, ErrNotEmpty
			}
		}
		held, err := ns.files.HoldTree(ctx, r.From, r.SourceTree)
		defer ReleaseAll(held)
		if err != nil {
			return Entry{}, false, err
		}
		err = ns.renameTree(ctx, r.From+"/", r.To+"/")
		// The copies are of what S3 holds, which may be more than the
		// cached listings showed; a failed copy left part of it.
		ns.dirs.Forget(r.From)
		ns.dirs.Forget(r.To)
		if err != nil {
			return Entry{}, false, err
		}
		// Still under the moved files' io locks, so that no retry of
		// them saves under the old name.
		ns.files.Moved(r.From, r.To)
		ns.files.follow(held, r.From, r.To)
		ns.dirs.Move(r.From, r.To)
	} else {
		target := ns.files.Hold(r.TargetFile) // from before the copy
		defer target.Release()
		var copied bool
		moved, copied, err = ns.files.RenameFile(ctx, r.SourceFile, r.From, r.To, r.Source)
		if err != nil && copied {
			// The original could not be deleted after the copy: the
			// source stays, and the target holds the copy now, not what
			// it held.
			target.Replaced()
			ns.dirs.Set(r.To, &moved)
			return moved, true, err
		}
		if err != nil {
			return Entry{}, false, err
		}
		target.Gone() // replaced: its own unsaved data is moot
		ns.files.Moved(r.From, r.To)
	}
	ns.dirs.Set(r.From, nil)
	ns.dirs.Set(r.To, &moved)
	return moved, false, nil
}

// renameTree moves every object under the prefix src to dst
// (RenameTree), and says in the log how far a failed one got.
func (ns *Namespace) renameTree(ctx context.Context, src, dst string) error {
	err := RenameTree(ctx, ns.store, src, dst)
	if re := (*RenameError)(nil); errors.As(err, &re) {
		ns.files.log.Error("directory rename failed", slog.String("from", re.From), slog.String("to", re.To),
			slog.Int("copied", re.Copied), slog.Int("objects", re.Objects), slog.Any("err", err))
	}
	return err
}
