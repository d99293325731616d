package vfs

import (
	"errors"
	"sync"
)

// Node is the filesystem's node standing for a File now: the adapter's
// inode. A File outlives its node when the kernel forgets the file with
// data still to save; the next node made for its name takes it over
// (Files.Adopt).
type Node interface {
	// TreeKey is the file's key as the tree has it now; inTree is false
	// once the node left the tree (unlinked, replaced, forgotten), and
	// key is then what is left of its path.
	TreeKey() (key string, inTree bool)
	// Kind is the file type the kernel knows the node as (S_IFREG, ...):
	// an inode cannot change type.
	Kind() uint32
	// AttrsChanged tells the kernel to forget what it caches of the
	// file's attributes, which changed here (a save gave it the object's
	// time, or another client replaced it).
	AttrsChanged()
}

// ErrWrongKind: the name holds an object of another file type than the
// node (a link taken for a file by a listing, which cannot tell). The
// adapter answers ESTALE, and the kernel looks the name up again.
var ErrWrongKind = errors.New("the name holds a file of another type than its node")

// ErrNotStaged: a change that needs the file open for writing came
// without it.
var ErrNotStaged = errors.New("the file is not open for writing")

// File is a regular file or a link as the mount knows it: its
// attributes and, once it is opened, changed or removed, its activity.
// Files (one per mount) does what needs the storage; a File holds no
// pointer to it.
//
// The tree holds a File for every name the kernel looked up (all of a
// directory's after `ls -l`), and most are never opened: what only an
// open, a change or a save needs lives apart, in activity, made at the
// first of those (fs's TestMemoryPerEntry, TestListedNamesStayIdle).
//
// Lock order: activity.io before mu.
type File struct {
	// Everything below is guarded by mu.
	mu        sync.Mutex
	node      Node  // standing for the file now
	attr      Entry // size, times, ETag, metadata as last known
	checkedAt int64 // when attr was last confirmed by S3 (Files.stamp)
	act       *activity
}

// activity is what a file keeps once it is opened, changed or removed.
// Made once (File.active), it stays with the file.
type activity struct {
	// io serialises changes to the content: writes, truncation, loading
	// the object into the staging copy, and uploads.
	io sync.Mutex

	// Everything below is guarded by the file's mu.
	cacheETag string   // ETag of what the kernel's page cache holds
	st        *Staging // local copy while open for writing or unsaved
	lastErr   error    // why the last save failed
	handles   int32    // open handles
	writing   int32    // handles open for writing and not closed yet
	// timeGuessed: attr's time is the time an upload was answered, which
	// may be a second off the object's Last-Modified; the next stat asks
	// S3 (once), so that the mtime shown never changes afterwards.
	timeGuessed bool
	metaDirty   bool // attr's metadata not stored yet
	unsaved     bool // created here and never uploaded
	deleted     bool // unlinked: nothing is uploaded any more
	// replaced is set with deleted when the name holds another object
	// now (a rename over it that failed after its copy): an open through
	// the kernel's stale entry answers ESTALE, so that it looks the name
	// up again, rather than ENOENT.
	replaced bool
}

// Writer marks a handle whose close will save the file: opened for
// writing, or written to, and not closed since. Guarded by the file's
// lock (File.setWriting).
type Writer struct{ open bool }

// nodeNow returns the node standing for the file now.
func (f *File) nodeNow() Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.node
}

// treeKey is the file's key in the tree now (Node.TreeKey).
func (f *File) treeKey() (string, bool) { return f.nodeNow().TreeKey() }

// key is what the tree says the file's key is, in the tree or not.
func (f *File) key() string {
	key, _ := f.treeKey()
	return key
}

// active returns the file's activity, made if it has none. Callers must
// not hold f.mu.
func (f *File) active() *activity {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.activeLocked()
}

// activeLocked is active with f.mu held.
func (f *File) activeLocked() *activity {
	if f.act == nil {
		f.act = &activity{}
	}
	return f.act
}

// lockIO takes the file's io lock (see activity.io).
func (f *File) lockIO() { f.active().io.Lock() }

// unlockIO releases it.
func (f *File) unlockIO() { f.act.io.Unlock() }

// The getters below read the activity of a file that may have none,
// without making one: a stat or a listing must not. f.mu must be held.

func (f *File) stLocked() *Staging {
	if f.act == nil {
		return nil
	}
	return f.act.st
}

func (f *File) lastErrLocked() error {
	if f.act == nil {
		return nil
	}
	return f.act.lastErr
}

func (f *File) deletedLocked() bool { return f.act != nil && f.act.deleted }

func (f *File) unsavedLocked() bool { return f.act != nil && f.act.unsaved }

func (f *File) timeGuessedLocked() bool { return f.act != nil && f.act.timeGuessed }

// setLastErrLocked records how a save went; f.mu must be held.
func (f *File) setLastErrLocked(err error) {
	if err != nil || f.act != nil {
		f.activeLocked().lastErr = err
	}
}

// localChangesLocked reports whether the file holds changes S3 has not
// seen; its attributes then win over any listing. f.mu must be held.
func (f *File) localChangesLocked() bool {
	a := f.act
	return a != nil && ((a.st != nil && a.st.Dirty()) || a.unsaved || a.metaDirty)
}

// changed reports whether the file holds changes S3 has not seen.
func (f *File) changed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.localChangesLocked()
}

// Attr returns the file's attributes as last known.
func (f *File) Attr() Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attr
}

// staged is the file's staging copy, nil when it has none.
func (f *File) staged() *Staging {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stLocked()
}

// Unlinked returns the file's attributes and true once it was deleted or
// replaced by a rename.
func (f *File) Unlinked() (Entry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attr, f.deletedLocked()
}

// Replaced reports whether the file's name holds another object now (see
// activity.replaced).
func (f *File) Replaced() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.act != nil && f.act.replaced
}

// lastErr is why the file's last save failed.
func (f *File) lastErr() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErrLocked()
}

// LocalEntry describes the file when S3 may not know it yet.
func (f *File) LocalEntry() (Entry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deletedLocked() || !f.unsavedLocked() {
		return Entry{}, false
	}
	return f.attr, true
}

// attrLocal returns the file's attributes, and whether they answer for
// it without asking S3: it has a staging copy, or changes S3 has not
// seen.
func (f *File) attrLocal() (Entry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attr, f.stLocked() != nil || f.localChangesLocked()
}

// MetaUnknown reports whether only a listing described the file so far,
// and nothing here answers for it instead.
func (f *File) MetaUnknown() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.attr.Meta && f.stLocked() == nil && !f.localChangesLocked()
}

// MayReadUnchecked reports whether an open may read the version a lookup
// or listing described, without asking S3 first: a read-only open of a
// file whose pages the kernel does not cache yet, with nothing local.
// Its first GET carries that ETag, so a replaced object is noticed before
// any data is returned.
func (f *File) MayReadUnchecked(write bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.act
	return !write && (a == nil || a.cacheETag == "" && a.st == nil) && !f.localChangesLocked() && f.attr.ETag != ""
}

// opened records that a handle counted by Files.addHandle, reading
// version etag, now reads it: keepCache says the kernel's cached pages
// are of that version; staged that the handle reads the staging copy.
func (f *File) opened(etag string, write bool) (keepCache, staged bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.activeLocked()
	staged = a.st != nil
	keepCache = !write && !staged && etag != "" && etag == a.cacheETag
	a.cacheETag = etag
	return keepCache, staged
}

// setCacheETag records that the kernel caches pages of version etag.
func (f *File) setCacheETag(etag string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.activeLocked().cacheETag = etag
}

// Idle reports whether the file has no activity: it was never opened,
// changed or removed.
func (f *File) Idle() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.act == nil
}

// Handles is how many handles the file has open.
func (f *File) Handles() int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.act == nil {
		return 0
	}
	return f.act.handles
}

// WriterOpen reports whether a handle that will save the file at close is
// open. A closed handle no longer counts, though the kernel releases it
// later: rsync sets the times by path right after close, and those must
// not wait for a close that has already happened.
func (f *File) WriterOpen() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.act != nil && f.act.writing > 0 && f.act.st != nil
}

// setWriting marks w, a handle's, as one whose close will save the file,
// or no longer.
func (f *File) setWriting(w *Writer, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if w.open != on {
		w.open = on
		if on {
			f.activeLocked().writing++
		} else {
			f.activeLocked().writing--
		}
	}
}

// ChangeMeta applies change to the file's attributes; when it reports a
// change, the metadata is to be saved (Files.SaveMeta, or with the
// content at the next close).
func (f *File) ChangeMeta(change func(*Entry) bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	changed := change(&f.attr)
	if changed {
		f.activeLocked().metaDirty = true
	}
	return changed
}

// SetLinkTarget records the target read for the link version etag,
// unless the file was replaced since.
func (f *File) SetLinkTarget(etag, target string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.attr.ETag == etag {
		f.attr.SetLinkTarget(target)
	}
}

// isOrphan reports whether f's node is out of the tree but f not deleted.
func (f *File) isOrphan() bool {
	if _, in := f.treeKey(); in {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.deletedLocked()
}
