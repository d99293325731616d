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
	if other, ok := f.writeBack.At(key); ok && other != n.fileState {
		// The queue keeps one file a name: the newer stands for it. Only
		// a race of two nodes made for one name gets here (adopt hands
		// the older's data to the newer, Create drops it), so say so.
		f.log.Error("unsaved data queued under this name by an earlier node of it is dropped for the newer one's", slog.String("path", key))
	}
	queued, was := f.writeBack.Add(key, n.fileState, failed)
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
func (f *FS) unqueue(n *file) { f.writeBack.Remove(n.fileState) }

// queued returns a copy of the retry queue (true: the upload failed).
func (f *FS) queued() map[*fileState]bool { return f.writeBack.Items() }

// retrySave is the write-back queue's save of one file, through the node
// standing for it now.
func (f *FS) retrySave(ctx context.Context, s *fileState, failed bool) error {
	n := s.nodeNow()
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
	for _, s := range lost {
		n := s.nodeNow()
		key, _ := n.saveKey()
		f.log.Error("unsaved data lost at unmount: the upload kept failing", slog.String("path", key), slog.Any("err", n.lastErrNow()))
	}
	return len(lost)
}

// Orphans. The kernel may forget a file whose upload is queued (nothing
// holds it open); go-fuse then drops its node from the tree, but the data
// still belongs to the key it is queued under (vfs.WriteBack keeps it,
// and moves it with a rename). Until a new node stands for that name,
// lookups and listings answer from the orphan; the new node then takes
// its state, unsaved data and place in the queue included. Without that,
// a new node would read and write the object's old version, and the
// orphan's retry would later land over whatever the new node saved.

// orphan returns the node, out of the tree, of the queued file that key
// stands for.
func (f *FS) orphan(key string) (*file, bool) {
	s, ok := f.writeBack.At(key)
	if !ok {
		return nil, false
	}
	n := s.nodeNow()
	if !n.isOrphan() {
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
	for name, s := range f.writeBack.In(dirKey) {
		if n := s.nodeNow(); n.isOrphan() {
			out[name] = n.attrNow()
		}
	}
	return out
}

// orphansUnder returns the orphans queued under the directory dirKey, at
// any depth.
func (f *FS) orphansUnder(dirKey string) []*file {
	var out []*file
	for _, s := range f.writeBack.Under(dirKey) {
		if n := s.nodeNow(); n.isOrphan() {
			out = append(out, n)
		}
	}
	return out
}

// adopt gives fresh, a node about to stand for key and not shared yet,
// the state of the orphan queued under key, if there is one: its
// attributes, unsaved data and place in the retry queue.
func (f *FS) adopt(key string, fresh *file) bool {
	old, ok := f.orphan(key)
	if !ok {
		return false
	}
	s := old.fileState
	old.lockIO() // waits for a save of the orphan under way
	defer old.unlockIO()
	if k, queued := f.writeBack.Key(s); !queued || k != key {
		return false // saved meanwhile, or renamed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.node != old || s.deletedLocked() {
		return false // adopted or dropped meanwhile
	}
	fresh.fileState, s.node = s, fresh
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
