package vfs

import (
	"context"
	"log/slog"
	"sort"
	"strings"
)

// retryLater queues a file with unsaved data: its upload failed (failed;
// close or fsync reported EIO), or a change was still being saved when its
// last handle went. The data is never dropped: the write-back queue
// uploads it again, first after FilesConfig.RetryInterval, then at
// doubling intervals (see WriteBack), until that succeeds or the file is
// deleted, and once more when the files are closed.
//
// A failed upload is queued at once, not when the kernel releases the
// handle: the kernel may never send that release if the filesystem is
// unmounted right after the failed close.
func (fs *Files) retryLater(f *File, failed bool) {
	key, ok := fs.saveKey(f)
	if !ok {
		// Not reachable as things are: a file leaves the tree with its
		// data queued, or deleted, and then has nothing to save.
		fs.log.Error("unsaved data of a file with no name left cannot be kept", slog.Any("err", f.lastErr()))
		return
	}
	if other, ok := fs.writeBack.At(key); ok && other != f {
		// The queue keeps one file a name: the newer stands for it. Only
		// a race of two nodes made for one name gets here (Adopt hands
		// the older's data to the newer, Created drops it), so say so.
		fs.log.Error("unsaved data queued under this name by an earlier node of it is dropped for the newer one's", slog.String("path", key))
	}
	queued, was := fs.writeBack.Add(key, f, failed)
	switch {
	case queued && (was || !failed):
		// Known already, and said so.
	case failed:
		fs.log.Error("upload failed; keeping the data and retrying in the background",
			slog.String("path", key), slog.Any("err", f.lastErr()))
	default:
		fs.log.Debug("a change is still being saved; checking again later", slog.String("path", key))
	}
}

// unqueue takes a file that was just saved, or deleted, off the queue.
func (fs *Files) unqueue(f *File) { fs.writeBack.Remove(f) }

// retrySave is the write-back queue's save of one file.
func (fs *Files) retrySave(ctx context.Context, f *File, failed bool) error {
	if f.WriterOpen() {
		return ErrNotNow // still being written: its close saves it
	}
	if err := fs.Save(ctx, f); err != nil {
		return err
	}
	if failed {
		fs.log.Info("upload retried successfully", slog.String("path", fs.keyNow(f)))
	}
	fs.DropIdleStaging(f)
	return nil
}

// Moved moves the queued files under the key from, a file's or a
// directory's, to the key to, as a rename of from did. The caller holds
// the moved files' io locks (HoldTree), so that no retry saves under the
// old name meanwhile.
func (fs *Files) Moved(from, to string) { fs.writeBack.Move(from, to) }

// follow queues the files of held still open for writing with changes
// not saved, which a rename of the directory from to to moves, under
// their new keys: the adapter moves their nodes only after the rename
// returns, and a close meanwhile must save under the new name, not the
// tree's old one (the queue's key wins, see saveKey). The close then
// takes them off the queue.
func (fs *Files) follow(held []Held, from, to string) {
	for _, h := range held {
		f := h.f
		if _, queued := fs.writeBack.Key(f); queued || !f.WriterOpen() || !f.changed() {
			continue
		}
		if key, in := f.treeKey(); in && strings.HasPrefix(key, from+"/") {
			fs.writeBack.Add(to+strings.TrimPrefix(key, from), f, false)
		}
	}
}

// UnsavedFile is a file whose data is not in the bucket yet.
type UnsavedFile struct {
	Key    string
	Failed bool  // its last upload failed (else it is still being written)
	Err    error // why
}

// Unsaved lists the files whose data is not in the bucket yet, by key.
func (fs *Files) Unsaved() []UnsavedFile {
	var out []UnsavedFile
	for f, failed := range fs.writeBack.Items() {
		out = append(out, UnsavedFile{Key: fs.keyNow(f), Failed: failed, Err: f.lastErr()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Close stops the background retries after one last attempt, and reports
// how many files still hold unsaved data, each said in the log.
func (fs *Files) Close(ctx context.Context) int {
	lost := fs.writeBack.Close(ctx)
	for _, f := range lost {
		fs.log.Error("unsaved data lost at unmount: the upload kept failing", slog.String("path", fs.keyNow(f)), slog.Any("err", f.lastErr()))
	}
	return len(lost)
}

// Orphans. The kernel may forget a file whose upload is queued (nothing
// holds it open); the adapter then drops its node from the tree, but the
// data still belongs to the key it is queued under (WriteBack keeps it,
// and moves it with a rename). Until a new node stands for that name,
// lookups and listings answer from the orphan; the new node then takes
// its File, unsaved data and place in the queue included. Without that,
// a new node would read and write the object's old version, and the
// orphan's retry would later land over whatever the new node saved.

// orphan returns the queued file that key stands for, if its node is out
// of the tree.
func (fs *Files) orphan(key string) (*File, bool) {
	f, ok := fs.writeBack.At(key)
	if !ok || !f.isOrphan() {
		return nil, false
	}
	return f, true
}

// OrphanEntry describes the orphan queued under key, if there is one.
func (fs *Files) OrphanEntry(key string) (Entry, bool) {
	if f, ok := fs.orphan(key); ok {
		return f.Attr(), true
	}
	return Entry{}, false
}

// OrphansIn returns the entries of the orphans queued in the directory
// dirKey, by name.
func (fs *Files) OrphansIn(dirKey string) map[string]Entry {
	out := make(map[string]Entry)
	for name, f := range fs.writeBack.In(dirKey) {
		if f.isOrphan() {
			out[name] = f.Attr()
		}
	}
	return out
}

// OrphansUnder returns the orphans queued under the directory dirKey, at
// any depth.
func (fs *Files) OrphansUnder(dirKey string) []*File {
	var out []*File
	for _, f := range fs.writeBack.Under(dirKey) {
		if f.isOrphan() {
			out = append(out, f)
		}
	}
	return out
}

// Adopt returns the File of the orphan queued under key, if there is one,
// with node, about to stand for key, standing for it now: its attributes,
// unsaved data and place in the retry queue go on.
func (fs *Files) Adopt(key string, node Node) (*File, bool) {
	f, ok := fs.writeBack.At(key)
	if !ok {
		return nil, false
	}
	old := f.nodeNow()
	if !f.isOrphan() {
		return nil, false
	}
	f.lockIO() // waits for a save of the orphan under way
	defer f.unlockIO()
	if k, queued := fs.writeBack.Key(f); !queued || k != key {
		return nil, false // saved meanwhile, or renamed
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.node != old || f.deletedLocked() {
		return nil, false // adopted or dropped meanwhile
	}
	f.node = node
	return f, true
}

// dropOrphan discards the orphan queued under key, if any: a file created
// under its name replaces it.
func (fs *Files) dropOrphan(key string) {
	f, ok := fs.orphan(key)
	if !ok {
		return
	}
	f.lockIO()
	defer f.unlockIO()
	f.mu.Lock()
	st := f.act.st
	f.act.st, f.act.deleted = nil, true
	f.mu.Unlock()
	if st != nil {
		st.Close()
	}
	fs.unqueue(f)
}
