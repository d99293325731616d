package fs

import (
	"context"
	"log/slog"
	"strings"

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
	queued, was := f.writeBack.Add(n, failed)
	switch {
	case queued && (was || !failed):
		// Known already, and said so.
	case failed:
		n.mu.Lock()
		cause := n.lastErrLocked()
		n.mu.Unlock()
		f.log.Error("upload failed; keeping the data and retrying in the background",
			slog.String("path", n.lastKeyNow()), slog.Any("err", cause))
	default:
		f.log.Debug("a change is still being saved; checking again later", slog.String("path", n.lastKeyNow()))
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
		n.mu.Lock()
		cause := n.lastErrLocked()
		n.mu.Unlock()
		f.log.Error("unsaved data lost at unmount: the upload kept failing", slog.String("path", key), slog.Any("err", cause))
	}
	return len(lost)
}

// Orphans. The kernel may forget a file whose upload is queued (nothing
// holds it open); go-fuse then drops its node from the tree, but the data
// still belongs to the node's last key. Until a new node stands for that
// name, lookups and listings answer from the orphan; the new node then
// adopts its unsaved data. Without that, a new node would read and write
// the object's old version, and the orphan's retry would later land over
// whatever the new node saved.

// orphans returns the queued orphans by their last key.
func (f *FS) orphans() map[string]*file {
	// On every lookup of a name without a node, and every listing: with
	// nothing queued (nearly always) it costs no copy of the queue.
	if f.writeBack.Len() == 0 {
		return nil
	}
	var out map[string]*file
	for n := range f.queued() {
		if !n.orphaned() {
			continue
		}
		n.mu.Lock()
		key, deleted := n.lastKeyLocked(), n.deletedLocked()
		n.mu.Unlock()
		if key == "" || deleted {
			continue
		}
		if out == nil {
			out = make(map[string]*file)
		}
		out[key] = n
	}
	return out
}

// orphanEntry describes the orphan last saved under key, if there is one.
func (f *FS) orphanEntry(key string) (vfs.Entry, bool) {
	if n, ok := f.orphans()[key]; ok {
		return n.attrNow(), true
	}
	return vfs.Entry{}, false
}

// orphansIn returns the entries of the orphans whose key is a child of
// the directory dirKey, by name.
func (f *FS) orphansIn(dirKey string) map[string]vfs.Entry {
	out := make(map[string]vfs.Entry)
	for key, n := range f.orphans() {
		parent, name := "", key
		if i := strings.LastIndexByte(key, '/'); i >= 0 {
			parent, name = key[:i], key[i+1:]
		}
		if parent == dirKey {
			out[name] = n.attrNow()
		}
	}
	return out
}

// orphansUnder returns the orphans whose last key is under the directory
// dirKey, at any depth.
func (f *FS) orphansUnder(dirKey string) []*file {
	var out []*file
	for key, n := range f.orphans() {
		if strings.HasPrefix(key, dirKey+"/") {
			out = append(out, n)
		}
	}
	return out
}

// adopt moves the unsaved data of the orphan last saved under key, if
// any, to fresh, a node about to stand for that name, and puts fresh in
// its place on the retry queue. The orphan is marked deleted, so a retry
// of it already under way saves nothing more.
func (f *FS) adopt(key string, fresh *file) bool {
	old, ok := f.orphans()[key]
	if !ok {
		return false
	}
	old.lockIO() // waits for a save of the orphan under way
	defer old.unlockIO()
	old.mu.Lock()
	oa := old.act
	if oa.deleted || oa.lastKey != key {
		old.mu.Unlock()
		return false
	}
	fresh.attr, fresh.checkedAt, fresh.timeGuessed = old.attr, old.checkedAt, old.timeGuessed
	fa := &activity{ // fresh is not shared yet
		cacheETag: oa.cacheETag, st: oa.st, metaDirty: oa.metaDirty, unsaved: oa.unsaved,
		lastKey: key, lastErr: oa.lastErr,
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

// dropOrphan discards the orphan last saved under key, if any: a file
// created under its name replaces it.
func (f *FS) dropOrphan(key string) {
	old, ok := f.orphans()[key]
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
