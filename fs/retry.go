package fs

import (
	"context"
	"log/slog"

	"mount-ws/vfs"
)

// retryLater queues a file with unsaved data: its upload failed (failed;
// close or fsync reported EIO), or a change was still being saved when its
// last handle went. The data is never dropped: the write-back queue
// uploads it again, first after Options.RetryInterval, then at doubling
// intervals (see vfs.WriteBack), until that succeeds or the file is
// deleted, and once more when the filesystem is closed.
//
// A failed upload is queued at once, not when the kernel releases the
// handle: the kernel may never send that release if the filesystem is
// unmounted right after the failed close.
func (f *FS) retryLater(n *file, failed bool) {
	key, ok := n.saveKey()
	if !ok {
		// Not reachable as things are: a file leaves the tree with its
		// data queued, or deleted, and then has nothing to save.
		f.log.Error("unsaved data of a file with no name left cannot be kept", slog.Any("err", n.lastErrNow()))
		return
	}
	queued, was := f.writeBack.Add(key, n, failed)
	switch {
	case queued && (was || !failed):
		// Known already, and said so.
	case failed:
		f.log.Error("upload failed; keeping the data and retrying in the background",
			slog.String("path", key), slog.Any("err", n.lastErrNow()))
	default:
		f.log.Debug("a change is still being saved; checking again later", slog.String("path", key))
	}
}

// unqueue takes a file that was just saved off the retry queue.
func (f *FS) unqueue(n *file) { f.writeBack.Remove(n) }

// queued returns a copy of the retry queue (true: the upload failed).
func (f *FS) queued() map[*file]bool { return f.writeBack.Items() }

// retrySave is the write-back queue's save of one file.
func (f *FS) retrySave(ctx context.Context, n *file, failed bool) error {
	if n.writerOpen() {
		return vfs.ErrNotNow // still being written: its close saves it
	}
	if err := n.save(ctx); err != nil {
		return err
	}
	if failed {
		key, _ := n.saveKey()
		f.log.Info("upload retried successfully", slog.String("path", key))
	}
	n.dropIdleStaging()
	return nil
}

// dropIdleStaging drops the staging copy of a file no handle has open once
// it holds nothing unsaved: kept, it would answer for the file (and be
// the base of its next change) after another program replaced the object.
func (n *file) dropIdleStaging() {
	n.lockIO()
	defer n.unlockIO()
	n.mu.Lock()
	a := n.act
	st := a.st
	idle := a.handles == 0 && st != nil && !st.Dirty() && !a.metaDirty
	if idle {
		a.st = nil
	}
	n.mu.Unlock()
	if idle {
		st.Close()
	}
}

// Close stops the background retries after one last attempt, and reports
// how many files still hold unsaved data. It returns once every goroutine
// the filesystem started has ended.
func (f *FS) Close(ctx context.Context) int {
	f.stopBackground()
	lost := f.writeBack.Close(ctx)
	for _, n := range lost {
		key, _ := n.saveKey()
		f.log.Error("unsaved data lost at unmount: the upload kept failing", slog.String("path", key), slog.Any("err", n.lastErrNow()))
	}
	return len(lost)
}

// Orphans. The kernel may forget a file whose upload is queued (nothing
// holds it open); go-fuse then drops its node from the tree, but the data
// still belongs to the key it is queued under (vfs.WriteBack keeps it,
// and moves it with a rename). Until a new node stands for that name,
// lookups and listings answer from the orphan; the new node then adopts
// its unsaved data. Without that, a new node would read and write the
// object's old version, and the orphan's retry would later land over
// whatever the new node saved.

// orphan returns the queued file without a node that key stands for.
func (f *FS) orphan(key string) (*file, bool) {
	n, ok := f.writeBack.At(key)
	if !ok || !n.isOrphan() {
		return nil, false
	}
	return n, true
}

// isOrphan reports whether n is out of the tree but not deleted.
func (n *file) isOrphan() bool {
	if !n.outOfTree() {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.deletedLocked()
}

// orphanEntry describes the orphan queued under key, if there is one.
func (f *FS) orphanEntry(key string) (vfs.Entry, bool) {
	if n, ok := f.orphan(key); ok {
		return n.attrNow(), true
	}
	return vfs.Entry{}, false
}

// orphansIn returns the entries of the orphans queued in the directory
// dirKey, by name.
func (f *FS) orphansIn(dirKey string) map[string]vfs.Entry {
	out := make(map[string]vfs.Entry)
	for name, n := range f.writeBack.In(dirKey) {
		if n.isOrphan() {
			out[name] = n.attrNow()
		}
	}
	return out
}

// orphansUnder returns the orphans queued under the directory dirKey, at
// any depth.
func (f *FS) orphansUnder(dirKey string) []*file {
	var out []*file
	for _, n := range f.writeBack.Under(dirKey) {
		if n.isOrphan() {
			out = append(out, n)
		}
	}
	return out
}

// adopt moves the unsaved data of the orphan queued under key, if any, to
// fresh, a node about to stand for that name, and puts fresh in its place
// on the retry queue. The orphan is marked deleted, so a retry of it
// already under way saves nothing more.
func (f *FS) adopt(key string, fresh *file) bool {
	old, ok := f.orphan(key)
	if !ok {
		return false
	}
	old.lockIO() // waits for a save of the orphan under way
	defer old.unlockIO()
	old.mu.Lock()
	oa := old.act
	if k, queued := f.writeBack.Key(old); oa.deleted || !queued || k != key {
		old.mu.Unlock()
		return false
	}
	fresh.attr, fresh.checkedAt, fresh.timeGuessed = old.attr, old.checkedAt, old.timeGuessed
	fa := &activity{ // fresh is not shared yet
		cacheETag: oa.cacheETag, st: oa.st, metaDirty: oa.metaDirty, unsaved: oa.unsaved,
		lastErr: oa.lastErr,
	}
	fresh.act = fa
	oa.st, oa.deleted = nil, true
	old.mu.Unlock()
	if st := fa.st; st != nil && !st.Dirty() && !fa.metaDirty && !st.Streaming() {
		fa.st = nil // saved meanwhile: nothing left to hand over
		st.Close()
	}

	f.writeBack.Replace(old, fresh, fa.st != nil || fa.metaDirty)
	return true
}

// dropOrphan discards the orphan queued under key, if any: a file created
// under its name replaces it.
func (f *FS) dropOrphan(key string) {
	old, ok := f.orphan(key)
	if !ok {
		return
	}
	old.lockIO()
	defer old.unlockIO()
	old.mu.Lock()
	st := old.act.st
	old.act.st, old.act.deleted = nil, true
	old.mu.Unlock()
	if st != nil {
		st.Close()
	}
	f.unqueue(old)
}
