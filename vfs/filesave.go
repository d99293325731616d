package vfs

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"mount-ws/bucket"
)

// A file open for writing, or holding data not saved yet, has a staging
// copy (Staging), shared by all its handles. What is here ties it to the
// file: when it is made, what the file's attributes say after each
// change, and what a save does to the file and its directory.

// stageFile makes sure the file has a staging copy: empty when trunc, else the
// object's current content. A handle counted by addHandle keeps it.
func (fs *Files) stageFile(ctx context.Context, f *File, trunc bool) error {
	f.lockIO()
	defer f.unlockIO()
	f.mu.Lock()
	st, unsaved, known, size, etag := f.act.st, f.act.unsaved, f.attr.Meta, f.attr.Size, f.attr.ETag
	f.mu.Unlock()
	if st != nil {
		if trunc {
			return fs.resizeLocked(f, st, 0)
		}
		return nil
	}
	key := f.key()
	if !unsaved && !known {
		// Rewriting an object must keep its metadata: learn it first.
		o, err := fs.store.Head(ctx, key)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err == nil {
			e := fs.learnt(f, EntryFromObject(o))
			if e.Kind() != f.nodeNow().Kind() {
				return ErrWrongKind
			}
			size, etag = e.Size, e.ETag
		}
	}
	var err error
	if !trunc && !unsaved {
		st, err = fs.stage.Based(key, etag, size)
	} else {
		// A file created here is unsaved, hence dirty, until its first
		// upload; truncating is a change to save.
		st, err = fs.stage.Empty(true)
	}
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.act.st = st
	f.mu.Unlock()
	return nil
}

// resizeLocked truncates or extends the staging copy. f's io lock must be
// held.
func (fs *Files) resizeLocked(f *File, st *Staging, size int64) error {
	if err := st.Resize(size); err != nil {
		return err
	}
	f.mu.Lock()
	f.attr.Size = size
	f.attr.Touch(true)
	f.mu.Unlock()
	return nil
}

// Truncate sets the file's size, staging it if needed.
func (fs *Files) Truncate(ctx context.Context, f *File, size int64) error {
	if err := fs.stageFile(ctx, f, size == 0); err != nil {
		return err
	}
	f.lockIO()
	defer f.unlockIO()
	return fs.resizeLocked(f, f.staged(), size)
}

// Grow extends a file open for writing to size with zeros, if it is
// smaller (fallocate); ErrNotStaged if it is not open for writing.
func (fs *Files) Grow(f *File, size int64) error {
	f.lockIO()
	defer f.unlockIO()
	st := f.staged()
	if st == nil {
		return ErrNotStaged
	}
	if size > st.Size() {
		return fs.resizeLocked(f, st, size)
	}
	return nil
}

// write stores p at off (at the end when appendOnly) in the staging copy.
func (fs *Files) write(ctx context.Context, f *File, p []byte, off int64, appendOnly bool) (int, error) {
	f.lockIO()
	defer f.unlockIO()
	st := f.staged()
	if st == nil {
		return 0, ErrNotStaged
	}
	w, size, err := st.Write(ctx, p, off, appendOnly, func() (string, bucket.Meta) {
		key := f.key()
		f.mu.Lock()
		defer f.mu.Unlock()
		return key, ObjectMeta(f.attr, key, true)
	})
	if w > 0 || err == nil {
		f.mu.Lock()
		f.attr.Size = size
		f.attr.Touch(true)
		f.mu.Unlock()
	}
	return w, err
}

// readStaged serves a read from the staging copy (see Staging.Read). ok
// is false when the file has no copy, or the read should go to S3.
func (fs *Files) readStaged(ctx context.Context, f *File, p []byte, off int64, etag string) (n int, ok bool, err error) {
	st := f.staged()
	if st == nil {
		return 0, false, nil
	}
	return st.Read(ctx, p, off, etag)
}

// Save uploads the staged content if it changed, with the file's metadata.
// On success the object in the bucket is exactly the staged bytes; on
// failure the staged data stays and is retried in the background.
//
// Once started, a save is never cut short by a signal to the caller:
// close is not retried by programs. The caller's ctx only carries values.
func (fs *Files) Save(ctx context.Context, f *File) error {
	ctx = context.WithoutCancel(ctx)
	f.lockIO()
	defer f.unlockIO()
	return fs.saveHeld(ctx, f)
}

// saveHeld is Save with f's io lock held.
func (fs *Files) saveHeld(ctx context.Context, f *File) error {
	f.mu.Lock()
	a := f.act // made by the io lock
	st, deleted, metaDirty := a.st, a.deleted, a.metaDirty
	e := f.attr
	f.mu.Unlock()
	if deleted || st == nil || (!st.Dirty() && !metaDirty) {
		return nil
	}
	err := fs.saveLocked(ctx, f, st, e)
	f.mu.Lock()
	f.setLastErrLocked(err)
	f.mu.Unlock()
	if errors.Is(err, ErrReplacedWhileOpen) || errors.Is(err, ErrMetaReplaced) {
		// Retrying cannot help: the bytes this copy lacks are gone with
		// the version it was based on. Say so once, loudly, and keep
		// the other program's version.
		fs.log.Error("the file was replaced by another program while open for writing here; this mount's changes to it could not be saved and were dropped", slog.String("path", fs.keyNow(f)), slog.Any("err", err))
		st.Discard()
		f.mu.Lock()
		a.metaDirty = false
		idle := a.handles == 0
		if idle {
			// Nothing holds the copy: drop it, so that the next open
			// reads the other program's version.
			a.st, f.checkedAt = nil, neverChecked
		}
		f.mu.Unlock()
		if idle {
			st.Close()
		}
		fs.saveFailures.Add(1)
		fs.unqueue(f)
		return err
	}
	if err != nil {
		fs.saveFailures.Add(1)
		fs.retryLater(f, true)
	} else {
		fs.saves.Add(1)
		fs.unqueue(f)
	}
	return err
}

// saveLocked is Save with f's io lock held and something to save.
func (fs *Files) saveLocked(ctx context.Context, f *File, st *Staging, e Entry) error {
	key, ok := fs.saveKey(f)
	if !ok {
		return errors.New("file has no name left to be saved under")
	}
	md := ObjectMeta(e, key, true)
	o, changed, err := st.Save(ctx, key, md)
	if !changed {
		return fs.saveMetaLocked(ctx, f, key)
	}
	if err != nil {
		return err
	}
	fs.saved(f, key, SavedEntry(o, md))
	return nil
}

// saved records that the file's content and metadata were stored as
// key, now described by e.
func (fs *Files) saved(f *File, key string, e Entry) {
	fs.markSaved(f, e)
	fs.stored(f, key, e)
}

// markSaved records that the file's content and metadata were stored,
// now described by e.
func (fs *Files) markSaved(f *File, e Entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.activeLocked()
	a.metaDirty, a.unsaved = false, false
	a.timeGuessed = true // the object's time is the file's mtime now
	f.attr, f.checkedAt = e, fs.stamp()
}

// stored tells the kernel and the file's directory what the file is now
// that a save stored it as key: the kernel through the node standing for
// it now (not the one that began the save if the kernel forgot that one
// meanwhile, see Adopt), the directory's cache by path.
func (fs *Files) stored(f *File, key string, e Entry) {
	f.nodeNow().AttrsChanged()
	fs.dirs.Set(key, &e) // by path: the directory's node may be gone
}

// SaveMeta stores changed metadata now, unless unsaved content will carry
// it soon anyway. When another program replaced the object meanwhile, the
// file takes its version, the change is dropped, and the error is
// ErrMetaReplaced.
func (fs *Files) SaveMeta(ctx context.Context, f *File) error {
	f.lockIO()
	defer f.unlockIO()
	f.mu.Lock()
	pending := f.act.unsaved || (f.act.st != nil && f.act.st.Dirty())
	f.mu.Unlock()
	if pending {
		return nil
	}
	key, ok := fs.saveKey(f)
	if !ok {
		return errors.New("file has no name left to be saved under")
	}
	return fs.saveMetaLocked(ctx, f, key)
}

// saveMetaLocked replaces the object's metadata with a copy onto itself
// (SaveMeta). f's io lock must be held.
func (fs *Files) saveMetaLocked(ctx context.Context, f *File, key string) error {
	f.mu.Lock()
	e := f.attr
	f.mu.Unlock()
	saved, err := SaveMeta(ctx, fs.store, key, e)
	replaced := errors.Is(err, ErrMetaReplaced)
	if err != nil && !replaced {
		return err
	}
	f.mu.Lock()
	if st := f.act.st; st != nil && !replaced {
		// The copy onto itself made a new version of the same bytes.
		st.MetaCopied(key, saved.ETag)
	}
	f.act.metaDirty = false
	f.attr, f.checkedAt = saved, fs.stamp()
	f.mu.Unlock()
	fs.stored(f, key, saved)
	return err
}

// release closes a handle: the last one drops a staging copy that holds
// nothing unsaved. Unsaved data (its upload failed) stays and is retried
// in the background until it is saved or the file is deleted.
//
// It waits for a save in progress (the kernel releases a handle after
// close has returned, while rsync is already setting the times by path),
// so what that save stores is not taken for unsaved data. A change made
// but not yet being saved is queued like a failed one, without the error.
func (fs *Files) release(f *File) {
	f.lockIO()
	defer f.unlockIO()
	f.mu.Lock()
	a := f.act
	a.handles--
	fs.handles.Add(-1)
	st := a.st
	last := a.handles == 0
	keep := st != nil && (st.Dirty() || a.metaDirty) && !a.deleted
	failed := a.lastErr != nil
	if last && st != nil && !keep {
		a.st = nil
	}
	f.mu.Unlock()
	switch {
	case last && st != nil && !keep:
		st.Close()
	case last && keep:
		fs.retryLater(f, failed)
	}
}

// DropIdleStaging drops the staging copy of a file no handle has open
// once it holds nothing unsaved: kept, it would answer for the file (and
// be the base of its next change) after another program replaced the
// object.
func (fs *Files) DropIdleStaging(f *File) {
	f.lockIO()
	defer f.unlockIO()
	f.mu.Lock()
	a := f.act
	st := a.st
	idle := a.handles == 0 && st != nil && !st.Dirty() && !a.metaDirty
	if idle {
		a.st = nil
	}
	f.mu.Unlock()
	if idle {
		st.Close()
	}
}

// saveKey returns the key to save the file under: the one its data is
// queued under (WriteBack moves it with a rename, and keeps it when the
// kernel forgets the file), else its place in the tree. A file out of
// the tree and not queued (deleted, replaced) has none.
func (fs *Files) saveKey(f *File) (string, bool) {
	if key, ok := fs.writeBack.Key(f); ok {
		return key, true
	}
	if key, in := f.treeKey(); in {
		return key, true
	}
	return "", false
}

// keyNow is the key the file is known under, for logs.
func (fs *Files) keyNow(f *File) string {
	key, _ := fs.saveKey(f)
	return key
}
