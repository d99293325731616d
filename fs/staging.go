package fs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall"

	"mount-ws/bucket"
	"mount-ws/vfs"
)

// A file open for writing, or holding data not saved yet, has a staging
// copy (vfs.Staging), shared by all its handles. What is here ties it to
// the file: when it is made, what the file's attributes say after each
// change, and what a save does to the node and its directory.

// stage makes sure the file has a staging copy: empty when trunc, else the
// object's current content. Callers must not hold n.mu.
func (n *file) stage(ctx context.Context, trunc bool) error {
	n.lockIO()
	defer n.unlockIO()
	n.mu.Lock()
	st, unsaved, known, size, etag := n.act.st, n.act.unsaved, n.attr.Meta, n.attr.Size, n.attr.ETag
	n.mu.Unlock()
	if st != nil {
		if trunc {
			return n.resizeLocked(st, 0)
		}
		return nil
	}
	key := n.key()
	if !unsaved && !known {
		// Rewriting an object must keep its metadata: learn it first.
		o, err := n.fs.b.Head(ctx, key)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err == nil {
			e := n.learnt(o)
			if n.wrongKind(e) {
				return syscall.ESTALE
			}
			size, etag = e.Size, e.ETag
		}
	}
	var err error
	if !trunc && !unsaved {
		st, err = n.fs.stage.Based(key, etag, size)
	} else {
		// A file created here is unsaved, hence dirty, until its first
		// upload; truncating is a change to save.
		st, err = n.fs.stage.Empty(true)
	}
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.act.st = st
	n.mu.Unlock()
	return nil
}

// resizeLocked truncates or extends the staging copy. n's io lock must be
// held.
func (n *file) resizeLocked(st *vfs.Staging, size int64) error {
	if err := st.Resize(size); err != nil {
		return err
	}
	n.mu.Lock()
	n.attr.Size = size
	n.attr.Touch(true)
	n.mu.Unlock()
	return nil
}

// truncate sets the file's size, staging it if needed.
func (n *file) truncate(ctx context.Context, size int64) error {
	if err := n.stage(ctx, size == 0); err != nil {
		return err
	}
	n.lockIO()
	defer n.unlockIO()
	return n.resizeLocked(n.staged(), size)
}

// write stores p at off (at the end when appending) in the staging copy.
func (n *file) write(ctx context.Context, p []byte, off int64, appendOnly bool) (int, error) {
	n.lockIO()
	defer n.unlockIO()
	st := n.staged()
	if st == nil {
		return 0, errors.New("write to a file not open for writing")
	}
	w, size, err := st.Write(ctx, p, off, appendOnly, func() (string, bucket.Meta) {
		key := n.key()
		n.mu.Lock()
		defer n.mu.Unlock()
		return key, vfs.ObjectMeta(n.attr, key, true)
	})
	if w > 0 || err == nil {
		n.mu.Lock()
		n.attr.Size = size
		n.attr.Touch(true)
		n.mu.Unlock()
	}
	return w, err
}

// readStaged serves a read from the staging copy (see vfs.Staging.Read).
// ok is false when the file has no copy, or the read should go to S3.
func (n *file) readStaged(ctx context.Context, p []byte, off int64, etag string) (int, bool, error) {
	st := n.staged()
	if st == nil {
		return 0, false, nil
	}
	return st.Read(ctx, p, off, etag)
}

// save uploads the staged content if it changed, with the file's metadata.
// On success the object in the bucket is exactly the staged bytes; on
// failure the staged data stays for the next save.
func (n *file) save(ctx context.Context) error {
	// Once started, a save is never cut short by a signal to the caller
	// (see uncancelled): close is not retried by programs, and the
	// stream's completion goes to S3 directly, not through n.fs.b.
	ctx = context.WithoutCancel(ctx)
	n.lockIO()
	defer n.unlockIO()
	return n.saveHeld(ctx)
}

// saveHeld is save with n's io lock held.
func (n *file) saveHeld(ctx context.Context) error {
	n.mu.Lock()
	a := n.act // made by the io lock
	st, deleted, metaDirty := a.st, a.deleted, a.metaDirty
	e := n.attr
	n.mu.Unlock()
	if deleted || st == nil || (!st.Dirty() && !metaDirty) {
		return nil
	}
	err := n.saveLocked(ctx, st, e)
	n.mu.Lock()
	n.setLastErrLocked(err)
	n.mu.Unlock()
	if errors.Is(err, vfs.ErrReplacedWhileOpen) || errors.Is(err, vfs.ErrMetaReplaced) {
		// Retrying cannot help: the bytes this copy lacks are gone with
		// the version it was based on. Say so once, loudly, and keep
		// the other program's version.
		n.fs.log.Error("the file was replaced by another program while open for writing here; this mount's changes to it could not be saved and were dropped", slog.String("path", n.keyNow()), slog.Any("err", err))
		st.Discard()
		n.mu.Lock()
		a.metaDirty = false
		idle := a.handles == 0
		if idle {
			// Nothing holds the copy: drop it, so that the next open
			// reads the other program's version.
			a.st, n.checkedAt = nil, neverChecked
		}
		n.mu.Unlock()
		if idle {
			st.Close()
		}
		n.fs.counts.saveFailures.Add(1)
		n.fs.unqueue(n)
		return err
	}
	if err != nil {
		n.fs.counts.saveFailures.Add(1)
		n.fs.retryLater(n, true)
	} else {
		n.fs.counts.saves.Add(1)
		n.fs.unqueue(n)
	}
	return err
}

// saveLocked is save with n's io lock held and something to save.
func (n *file) saveLocked(ctx context.Context, st *vfs.Staging, e vfs.Entry) error {
	key, ok := n.saveKey()
	if !ok {
		return errors.New("file has no name left to be saved under")
	}
	md := vfs.ObjectMeta(e, key, true)
	o, changed, err := st.Save(ctx, key, md)
	if !changed {
		return n.saveMetaLocked(ctx, key)
	}
	if err != nil {
		return err
	}
	n.saved(key, vfs.SavedEntry(o, md))
	return nil
}

// saved records that the file's content and metadata were stored as
// key, now described by e.
func (n *file) saved(key string, e vfs.Entry) {
	n.mu.Lock()
	a := n.activeLocked()
	a.metaDirty, a.unsaved = false, false
	n.attr, n.checkedAt, n.timeGuessed = e, n.fs.stamp(), true
	n.mu.Unlock()
	n.stored(key, e) // the object's time is the file's mtime now
}

// stored tells the kernel and the file's directory what the file is now
// that a save stored it as key: the kernel through the node standing for
// it now, which is not n if n was forgotten while the save ran
// (FS.adopt), the directory's cache by path.
func (n *file) stored(key string, e vfs.Entry) {
	n.nodeNow().dropKernelAttrs()
	n.fs.dirs.Set(key, &e) // by path: the directory's node may be gone
}

// saveMeta stores changed metadata now, unless unsaved content will carry
// it soon anyway.
func (n *file) saveMeta(ctx context.Context) error {
	n.lockIO()
	defer n.unlockIO()
	n.mu.Lock()
	pending := n.act.unsaved || (n.act.st != nil && n.act.st.Dirty())
	n.mu.Unlock()
	if pending {
		return nil
	}
	key, ok := n.saveKey()
	if !ok {
		return errors.New("file has no name left to be saved under")
	}
	return n.saveMetaLocked(ctx, key)
}

// saveMetaLocked replaces the object's metadata with a copy onto itself
// (vfs.SaveMeta). When another program replaced the object meanwhile, the
// node takes its version and the change is dropped (the operation answers
// ESTALE). n's io lock must be held.
func (n *file) saveMetaLocked(ctx context.Context, key string) error {
	n.mu.Lock()
	e := n.attr
	n.mu.Unlock()
	saved, err := vfs.SaveMeta(ctx, n.fs.b, key, e)
	replaced := errors.Is(err, vfs.ErrMetaReplaced)
	if err != nil && !replaced {
		return err
	}
	n.mu.Lock()
	if st := n.act.st; st != nil && !replaced {
		// The copy onto itself made a new version of the same bytes.
		st.MetaCopied(key, saved.ETag)
	}
	n.act.metaDirty = false
	n.attr, n.checkedAt = saved, n.fs.stamp()
	n.mu.Unlock()
	n.stored(key, saved)
	return err
}

// release closes a handle: the last one drops a staging copy that holds
// nothing unsaved. Unsaved data (its upload failed) stays and is retried in
// the background until it is saved or the file is deleted.
//
// It waits for a save in progress (the kernel releases a handle after
// close has returned, while rsync is already setting the times by path),
// so what that save stores is not taken for unsaved data. A change made
// but not yet being saved is queued like a failed one, without the error.
func (n *file) release() {
	n.lockIO()
	defer n.unlockIO()
	n.mu.Lock()
	a := n.act
	a.handles--
	n.fs.counts.handles.Add(-1)
	st := a.st
	last := a.handles == 0
	keep := st != nil && (st.Dirty() || a.metaDirty) && !a.deleted
	failed := a.lastErr != nil
	if last && st != nil && !keep {
		a.st = nil
	}
	n.mu.Unlock()
	switch {
	case last && st != nil && !keep:
		st.Close()
	case last && keep:
		n.fs.retryLater(n, failed)
	}
}

// saveKey returns the key to save the file under: the one its data is
// queued under (vfs.WriteBack moves it with a rename, and keeps it when
// the kernel forgets the file), else its place in the tree. A file out
// of the tree and not queued (deleted, replaced) has none.
func (n *file) saveKey() (string, bool) {
	if key, ok := n.fs.writeBack.Key(n.fileState); ok {
		return key, true
	}
	if n.outOfTree() {
		return "", false
	}
	return n.key(), true
}

// keyNow is the key the file is known under, for logs.
func (n *file) keyNow() string {
	key, _ := n.saveKey()
	return key
}

// lastErrNow is why the file's last save failed.
func (n *file) lastErrNow() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastErrLocked()
}

// outOfTree reports whether the file is no longer in go-fuse's tree:
// unlinked, replaced by a rename, or forgotten by the kernel.
func (n *file) outOfTree() bool {
	_, p := n.Parent()
	return p == nil
}

// parentDir is the directory the file is in, if it is still in the tree.
func (n *file) parentDir() *dir { return dirOf(&n.Inode) }

// baseName is the name of key in its directory.
func baseName(key string) string {
	_, name := vfs.SplitKey(key)
	return name
}
