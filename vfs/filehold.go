package vfs

import (
	"context"
	"log/slog"
)

// Held is a file whose io lock is held while its object is deleted or
// replaced, so that no save of it (a background retry above all) can land
// after the change and undo it. The zero Held holds nothing: the name has
// no File in memory.
type Held struct {
	fs *Files
	f  *File
}

// Hold takes f's io lock (f may be nil), and fetches what its open
// handles have not fetched yet while the object is still there.
func (fs *Files) Hold(f *File) Held {
	if f == nil {
		return Held{}
	}
	f.lockIO()
	f.mu.Lock()
	st, open := f.act.st, f.act.handles > 0
	f.mu.Unlock()
	if st != nil && open {
		if err := st.Detach(context.Background()); err != nil {
			fs.log.Warn("could not fetch an open file before its object changes; its handles will fail", slog.String("path", f.key()), slog.Any("err", err))
		}
	}
	return Held{fs, f}
}

// Gone marks the file deleted once its object is: its unsaved data is
// never uploaded any more, and a stream it started is aborted. A staging
// copy no handle reads any more is dropped with its share of the staging
// space (a handle still open drops it at its release).
func (h Held) Gone() {
	f := h.f
	if f == nil {
		return
	}
	f.mu.Lock()
	a := f.activeLocked()
	a.deleted = true
	st := a.st
	idle := st != nil && a.handles == 0
	if idle {
		a.st = nil
	}
	f.mu.Unlock()
	switch {
	case idle:
		st.Close()
	case st != nil:
		st.StopStream()
	}
	h.fs.unqueue(f)
}

// Replaced is Gone for a file whose name now holds another object.
func (h Held) Replaced() {
	if h.f == nil {
		return
	}
	h.Gone()
	h.f.mu.Lock()
	h.f.act.replaced = true // made by Gone
	h.f.mu.Unlock()
}

// Release releases the io lock.
func (h Held) Release() {
	if h.f != nil {
		h.f.unlockIO()
	}
}

// ReleaseAll releases every file of held.
func ReleaseAll(held []Held) {
	for _, h := range held {
		h.Release()
	}
}

// HoldTree holds every file under the directory key for its rename: those
// given (the files of the tree's nodes) and the queued files whose nodes
// the kernel forgot (orphans). It saves the unsaved data of those no
// handle is writing, so that the copies carry it and no retry lands under
// the old name afterwards. The caller releases what it returns, also on
// error.
func (fs *Files) HoldTree(ctx context.Context, key string, inTree []*File) ([]Held, error) {
	held := fs.lockAll(append(fs.OrphansUnder(key), inTree...))
	for _, h := range held {
		f := h.f
		if !f.WriterOpen() {
			if err := fs.saveHeld(context.WithoutCancel(ctx), f); err != nil {
				return held, err
			}
		}
		// The object moves: a staging copy can no longer fetch from it
		// or copy parts of it, and an upload under way would complete
		// under the old name; the file goes up whole at its close.
		if st := f.staged(); st != nil {
			if err := st.Detach(ctx); err != nil {
				return held, err
			}
			st.StopStream()
		}
	}
	return held, nil
}

// lockAll takes the io locks of files, all or none at a time: a rename
// inside the directory being renamed may hold two of them, taken in
// another order, and waiting for one while holding others could
// deadlock with it. So a lock that is taken already releases the others,
// waits for that one's holder to finish, holding nothing, and starts
// again.
func (fs *Files) lockAll(files []*File) []Held {
	for {
		held := make([]Held, 0, len(files))
		var busy *File
		for _, f := range files {
			if !f.active().io.TryLock() {
				busy = f
				break
			}
			held = append(held, Held{fs, f})
		}
		if busy == nil {
			return held
		}
		ReleaseAll(held)
		busy.lockIO()
		busy.unlockIO()
	}
}

// RenameFile moves one file from src to dst and returns its entry under
// the new name; f is its File, nil when it has none in memory, and e what
// the listing says of it. A file with unsaved content is uploaded under
// the new name; any other is copied on the server, with its metadata
// (a rename changes ctime). The original is then deleted. copied reports
// that the object is under dst, also when deleting the original failed.
func (fs *Files) RenameFile(ctx context.Context, f *File, src, dst string, e Entry) (_ Entry, copied bool, _ error) {
	if f != nil {
		f.lockIO()
		defer f.unlockIO()
		f.mu.Lock()
		st := f.act.st
		e = f.attr
		f.mu.Unlock()
		if st != nil {
			// Fetch what an open handle has not fetched yet while the
			// object is still under its old key.
			if err := st.Detach(ctx); err != nil {
				return e, false, err
			}
		}
		if st != nil && st.Dirty() {
			// Unsaved content goes straight to the new name; the old
			// object, if any, is deleted below.
			md := ObjectMeta(e, dst, true)
			o, err := st.SaveWhole(ctx, dst, md)
			if err != nil {
				return e, false, err
			}
			saved := SavedEntry(o, md)
			fs.markSaved(f, saved)
			return saved, true, fs.store.Delete(ctx, src)
		}
	}
	if !e.Meta {
		// The metadata is rewritten below (a rename changes ctime), so
		// it must be known first.
		o, err := fs.store.Head(ctx, src)
		if err != nil {
			return e, false, err
		}
		e = KeepLinkTarget(EntryFromObject(o), e)
	}
	e = RenamedEntry(e, src, dst)
	md := ObjectMeta(e, dst, false)
	o, err := fs.store.Copy(ctx, src, dst, &md, "")
	if err != nil {
		return e, false, err
	}
	moved := EntryFromObject(o) // the same bytes: the same link target
	moved.SetLinkTarget(e.LinkTarget())
	if f != nil {
		f.mu.Lock()
		f.act.metaDirty = false
		f.mu.Unlock()
		moved = fs.Update(f, moved)
	}
	return moved, true, fs.store.Delete(ctx, src)
}
