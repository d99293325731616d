package fs

import (
	"context"
	"errors"
	iofs "io/fs"
	"log/slog"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"mount-ws/bucket"
	"mount-ws/vfs"
)

// file is a regular file or a symbolic link: a node of go-fuse's tree.
// Its key is its path in the tree, so a rename moves it without
// bookkeeping here.
//
// What the mount knows of the file is in fileState, which outlives the
// node when the kernel forgets it with data still to save: the next node
// made for the name takes the same state (FS.adopt).
type file struct {
	fusefs.Inode
	fs *FS
	*fileState
}

// fileState is a file's attributes and, once it is opened or changed,
// its activity.
//
// A node stands for every name the kernel looked up (all of a
// directory's after `ls -l`), and most are never opened: what only an
// open, a change or a save needs lives apart, in activity, made at the
// first of those (TestMemoryPerEntry, TestListedNamesStayIdle).
//
// Lock order: activity.io before mu.
type fileState struct {
	// Everything below is guarded by mu.
	mu        sync.Mutex
	node      *file     // the node standing for the file now
	attr      vfs.Entry // size, times, ETag, metadata as last known
	checkedAt int64     // when attr was last confirmed by S3 (FS.stamp)
	// timeGuessed: attr's time is the time an upload was answered, which
	// may be a second off the object's Last-Modified; the next stat asks
	// S3 (once), so that the mtime shown never changes afterwards.
	timeGuessed bool
	act         *activity // nil until the file is first opened, changed or removed
}

// nodeNow returns the node standing for the file now.
func (s *fileState) nodeNow() *file {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.node
}

// activity is what a file keeps once it is opened, changed or removed.
// Made once (file.active), it stays with the file's state.
type activity struct {
	// io serialises changes to the content: writes, truncation, loading
	// the object into the staging file, and uploads.
	io sync.Mutex

	// Everything below is guarded by the file's mu.
	cacheETag string       // ETag of what the kernel's page cache holds
	st        *vfs.Staging // local copy while open for writing or unsaved
	lastErr   error        // why the last save failed
	handles   int32        // open handles
	writing   int32        // handles open for writing and not closed yet
	metaDirty bool         // attr's metadata not stored yet
	unsaved   bool         // created here and never uploaded
	deleted   bool         // unlinked: nothing is uploaded any more
	// replaced is set with deleted when the name holds another object
	// now (a rename over it that failed after its copy): an open through
	// the kernel's stale entry answers ESTALE, so that it looks the name
	// up again, rather than ENOENT.
	replaced bool
}

// active returns the file's activity, made if it has none. Callers must
// not hold s.mu.
func (s *fileState) active() *activity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.activeLocked()
}

// activeLocked is active with s.mu held.
func (s *fileState) activeLocked() *activity {
	if s.act == nil {
		s.act = &activity{}
	}
	return s.act
}

// lockIO takes the file's io lock (see activity.io).
func (s *fileState) lockIO() { s.active().io.Lock() }

// unlockIO releases it.
func (s *fileState) unlockIO() { s.act.io.Unlock() }

// The getters below read the activity of a file that may have none,
// without making one: a stat or a listing must not. s.mu must be held.

func (s *fileState) stLocked() *vfs.Staging {
	if s.act == nil {
		return nil
	}
	return s.act.st
}

func (s *fileState) lastErrLocked() error {
	if s.act == nil {
		return nil
	}
	return s.act.lastErr
}

func (s *fileState) deletedLocked() bool { return s.act != nil && s.act.deleted }

func (s *fileState) unsavedLocked() bool { return s.act != nil && s.act.unsaved }

// setLastErrLocked records how a save went; s.mu must be held.
func (s *fileState) setLastErrLocked(err error) {
	if err != nil || s.act != nil {
		s.activeLocked().lastErr = err
	}
}

var (
	_ fusefs.NodeGetattrer   = (*file)(nil)
	_ fusefs.NodeOpener      = (*file)(nil)
	_ fusefs.NodeSetattrer   = (*file)(nil)
	_ fusefs.NodeReadlinker  = (*file)(nil)
	_ fusefs.NodeFsyncer     = (*file)(nil)
	_ fusefs.NodeAllocater   = (*file)(nil)
	_ fusefs.NodeOnForgetter = (*file)(nil)
)

func (f *FS) newFile(e vfs.Entry) *file {
	n := &file{fs: f, fileState: &fileState{attr: e, checkedAt: f.stamp()}}
	n.node = n // not shared yet
	return n
}

func (n *file) key() string { return n.Path(nil) }

// OnForget implements fusefs.NodeOnForgetter: the kernel forgot the file,
// and its inode number may go to the next node made for its name.
func (n *file) OnForget() {
	n.fs.releaseIno(&n.Inode)
	n.fs.counts.forgotten.Add(1)
}

// staged is the file's staging copy, nil when it has none.
func (n *file) staged() *vfs.Staging {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stLocked()
}

func (n *file) attrNow() vfs.Entry {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.attr
}

// update merges attributes seen in a listing or lookup and returns what
// the node now says. A node with local changes keeps its own view.
func (n *file) update(e vfs.Entry) vfs.Entry {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.localChangesLocked() {
		return n.attr
	}
	n.attr, n.checkedAt, n.timeGuessed = vfs.KeepKnownMeta(n.attr, e), n.fs.stamp(), false
	return n.attr
}

// localChangesLocked reports whether the file holds changes S3 has not
// seen; its attributes then win over any listing. s.mu must be held.
func (s *fileState) localChangesLocked() bool {
	a := s.act
	return a != nil && ((a.st != nil && a.st.Dirty()) || a.unsaved || a.metaDirty)
}

// savedSince returns the file's attributes if this mount confirmed or
// saved them after t (and it was not deleted since).
func (n *file) savedSince(t time.Time) (vfs.Entry, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.deletedLocked() || n.checkedAt <= n.fs.stampOf(t) {
		return vfs.Entry{}, false
	}
	return n.attr, true
}

// localEntry describes the file when S3 may not know it yet.
func (n *file) localEntry() (vfs.Entry, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.deletedLocked() || !n.unsavedLocked() {
		return vfs.Entry{}, false
	}
	return n.attr, true
}

// current returns the file's attributes, asking S3 when they are older than
// the metadata TTL and the file has no local changes.
func (n *file) current(ctx context.Context) (vfs.Entry, error) {
	n.mu.Lock()
	e := n.attr
	recent := n.fs.sinceStamp(n.checkedAt) < n.fs.opts.MetadataTTL
	fresh := n.localChangesLocked() || (!n.timeGuessed && (n.stLocked() != nil || recent))
	n.mu.Unlock()
	if fresh {
		return e, nil
	}
	o, err := n.fs.b.Head(ctx, n.key())
	if err != nil {
		return vfs.Entry{}, err
	}
	return n.learnt(o), nil
}

// openVersion returns the version of the file an open reads. A read-only
// open of a file whose pages the kernel does not cache yet takes what the
// lookup or listing said, unchecked: its first GET carries that ETag, and
// if the object was replaced meanwhile, the handle moves to the new one
// before it returns any data (handle.readS3), so a fresh open still reads
// what another client just wrote, without a HEAD per open. Any other open
// asks S3 (revalidate), because the kernel may serve the old version's
// cached pages without a request, and a writer must keep the object's
// metadata.
func (n *file) openVersion(ctx context.Context, write bool) (e vfs.Entry, unchecked bool, err error) {
	n.mu.Lock()
	unchecked = !write && (n.act == nil || n.act.cacheETag == "" && n.act.st == nil) && !n.localChangesLocked() && n.attr.ETag != ""
	n.mu.Unlock()
	if !unchecked {
		e, err = n.revalidate(ctx)
		return e, false, err
	}
	// The file type must be known (a link in a listing looks like a file).
	if errno := n.checkKind(ctx, false); errno != 0 {
		return vfs.Entry{}, false, errno
	}
	return n.attrNow(), true, nil
}

// revalidate returns the file's attributes for an open: what S3 holds
// now, so that a new open reads what another client just wrote (one HEAD
// per open, as mountpoint-s3 does). A file with local changes or being
// written here is what this mount says. When the object changed, the
// kernel is told to forget the attributes it caches (size above all);
// the open then drops the pages it caches (no FOPEN_KEEP_CACHE).
func (n *file) revalidate(ctx context.Context) (vfs.Entry, error) {
	n.mu.Lock()
	e := n.attr
	local := n.stLocked() != nil || n.localChangesLocked()
	n.mu.Unlock()
	if local {
		return e, nil
	}
	o, err := n.fs.b.Head(ctx, n.key())
	if err != nil {
		return vfs.Entry{}, err
	}
	fresh := n.learnt(o)
	if fresh.ETag != e.ETag {
		n.dropKernelAttrs()
	}
	return fresh, nil
}

// learnt takes what a HEAD said about the file, and records it in its
// directory's listing too: the kernel may forget this node, and the next
// lookup must not make a node from the listing's guess again (a link
// typed as a file would answer ESTALE once more, past the kernel's one
// retry).
func (n *file) learnt(o bucket.Object) vfs.Entry {
	e := n.update(vfs.EntryFromObject(o))
	if !n.outOfTree() {
		n.fs.dirs.Remember(n.key(), vfs.EntryFromObject(o), true)
	}
	return e
}

// dropKernelAttrs tells the kernel to forget the attributes it caches for
// the file, which changed here (an upload gave it the object's time, or
// another client replaced it), so its next stat asks again.
func (n *file) dropKernelAttrs() {
	if errno := n.NotifyContent(-1, 0); errno != 0 && errno != syscall.ENOENT {
		n.fs.log.Debug("could not invalidate cached attributes", slog.String("path", n.key()), slog.String("errno", errno.Error()))
	}
}

// Getattr implements fusefs.NodeGetattrer.
func (n *file) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if e, gone := n.unlinked(); gone {
		// Still open somewhere (fstat): what it was, with no name left.
		n.fs.fillAttr(&out.Attr, e)
		out.Attr.Ino, out.Attr.Nlink = n.StableAttr().Ino, 0
		return 0
	}
	if err := n.fillMeta(ctx); err != nil {
		return n.fs.toErrno("getattr", n.key(), err)
	}
	e, err := n.current(ctx)
	if err != nil {
		return n.fs.toErrno("getattr", n.key(), err)
	}
	if n.wrongKind(e) {
		return syscall.ESTALE
	}
	n.fs.fillAttr(&out.Attr, e)
	out.Attr.Ino = n.StableAttr().Ino
	out.SetTimeout(n.fs.opts.MetadataTTL)
	return 0
}

// unlinked returns the file's attributes and true once it was deleted or
// replaced by a rename.
func (n *file) unlinked() (vfs.Entry, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.attr, n.deletedLocked()
}

// wrongKind reports whether e is of another file type than the kernel's
// inode (a link, FIFO or device node where it has a regular file, or the
// reverse): the inode was made from a listing, which cannot tell, or the
// name now holds another object, and an inode cannot change type.
// Operations then answer ESTALE before they change anything: the kernel
// looks the name up again (once), which gives an inode of the right type,
// and retries.
func (n *file) wrongKind(e vfs.Entry) bool { return e.Kind() != n.StableAttr().Mode }

// checkKind makes sure the file's type is known before an operation that
// depends on it: it reads the metadata (with its siblings' in a small
// directory, else with a HEAD when must is set) if only a listing
// described the file, and answers ESTALE for a wrong kind.
func (n *file) checkKind(ctx context.Context, must bool) syscall.Errno {
	if err := n.fillMeta(ctx); err != nil {
		return n.fs.toErrno("lookup", n.key(), err)
	}
	n.mu.Lock()
	e := n.attr
	local := n.stLocked() != nil || n.localChangesLocked()
	n.mu.Unlock()
	if must && !e.Meta && !local {
		o, err := n.fs.b.Head(ctx, n.key())
		if err != nil {
			return n.fs.toErrno("lookup", n.key(), err)
		}
		e = n.learnt(o)
	}
	if n.wrongKind(e) {
		return syscall.ESTALE
	}
	return 0
}

// fillMeta reads the file's metadata, with its siblings', when only a
// listing described it so far (see dir.wantsMeta).
func (n *file) fillMeta(ctx context.Context) error {
	n.mu.Lock()
	need := !n.attr.Meta && n.stLocked() == nil && !n.localChangesLocked()
	n.mu.Unlock()
	if p := n.parentDir(); need && p != nil && p.wantsMeta() {
		return p.fillMeta(ctx, false, baseName(n.key()))
	}
	return nil
}

// Readlink implements fusefs.NodeReadlinker: the object holds the target.
func (n *file) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	n.mu.Lock()
	e := n.attr
	n.mu.Unlock()
	if !e.IsSymlink() {
		return nil, syscall.EINVAL
	}
	if t := e.LinkTarget(); t != "" {
		return []byte(t), 0
	}
	target, errno := n.fetchTarget(ctx, e)
	if errno != 0 {
		return nil, errno
	}
	n.mu.Lock()
	if n.attr.ETag == e.ETag { // not replaced by another link meanwhile
		n.attr.SetLinkTarget(string(target))
	}
	n.mu.Unlock()
	return target, 0
}

// fetchTarget reads the target of the link e (vfs.LinkTarget). A link's
// target is metadata, not file data: not interruptible (see uncancelled).
func (n *file) fetchTarget(ctx context.Context, e vfs.Entry) ([]byte, syscall.Errno) {
	target, err := vfs.LinkTarget(context.WithoutCancel(ctx), n.fs.b, n.fs.bodies, n.key(), e)
	if errors.Is(err, bucket.ErrPrecondition) || errors.Is(err, iofs.ErrNotExist) {
		return nil, syscall.ESTALE // the kernel looks the name up again
	}
	if err != nil {
		return nil, n.fs.toErrno("readlink", n.key(), err)
	}
	return target, 0
}

// Open implements fusefs.NodeOpener. For writing, the file's content is
// staged locally (fetched first unless O_TRUNC); for reading, the kernel
// keeps the file's cached pages when its ETag is the one they were read
// with.
func (n *file) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	write := flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0
	if write || flags&syscall.O_TRUNC != 0 {
		if errno := n.fs.refuseWrite(); errno != 0 {
			return nil, 0, errno
		}
	}
	old, gone := n.unlinked()
	if gone {
		n.mu.Lock()
		replaced := n.act != nil && n.act.replaced
		n.mu.Unlock()
		if replaced {
			return nil, 0, syscall.ESTALE // the kernel looks the name up again
		}
		return nil, 0, syscall.ENOENT // unlinked or replaced since the lookup
	}
	e, unchecked, err := n.openVersion(ctx, write)
	if errors.Is(err, iofs.ErrNotExist) {
		// Gone since the kernel looked the name up: ESTALE makes it look
		// the name up again, and then answer for what is there now.
		return nil, 0, syscall.ESTALE
	}
	if err != nil {
		return nil, 0, n.fs.toErrno("open", n.key(), err)
	}
	if n.wrongKind(e) {
		if old.Meta {
			// The file this inode stood for was replaced by an object
			// of another kind (a rename race): it is gone.
			return nil, 0, syscall.ENOENT
		}
		// Typed from a listing, which cannot tell: look it up again.
		return nil, 0, syscall.ESTALE
	}
	// Counted before staging, so that the release of another handle
	// meanwhile does not drop the staging copy this one is about to use.
	n.mu.Lock()
	n.activeLocked().handles++
	n.fs.counts.handles.Add(1)
	n.mu.Unlock()
	if write {
		if err := n.stage(ctx, flags&syscall.O_TRUNC != 0); err != nil {
			n.release()
			if errors.Is(err, syscall.ESTALE) {
				return nil, 0, syscall.ESTALE // a link taken for a file: look it up again
			}
			return nil, 0, n.fs.toErrno("open", n.key(), err)
		}
	}
	n.mu.Lock()
	a := n.act // made above: counted in handles
	staged := a.st != nil
	keep := !write && !staged && e.ETag != "" && e.ETag == a.cacheETag
	a.cacheETag = e.ETag
	n.mu.Unlock()
	var fuseFlags uint32
	if keep {
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
	}
	if !write && !staged {
		// Nothing to upload at its close: spare the kernel the FLUSH
		// round trip (a writer opened later saves at its own close).
		fuseFlags |= fuse.FOPEN_NOFLUSH
	}
	h := &handle{n: n, attr: e, unchecked: unchecked, appendOnly: flags&syscall.O_APPEND != 0}
	if write {
		n.setWriting(h, true)
	}
	if !n.fs.opts.ReadOnly {
		return h, fuseFlags, 0
	}
	fh, errno := n.passThrough(h, e)
	if errno != 0 {
		n.release()
	}
	return fh, fuseFlags, errno
}

// Allocate implements fusefs.NodeAllocater for fallocate(2). S3 cannot
// reserve space, so mode 0 only extends the file with zeros (what programs
// rely on: the size), and FALLOC_FL_KEEP_SIZE alone changes nothing; other
// modes (punching holes, zeroing or collapsing ranges) are not supported.
// The change is saved at close, like a write.
func (n *file) Allocate(ctx context.Context, fh fusefs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if errno := n.fs.refuseWrite(); errno != 0 {
		return errno
	}
	switch mode {
	case 0:
	case unix.FALLOC_FL_KEEP_SIZE:
		return 0
	default:
		return syscall.EOPNOTSUPP
	}
	n.lockIO()
	defer n.unlockIO()
	st := n.staged()
	if st == nil {
		return syscall.EBADF // the kernel only sends it for a file open for writing
	}
	if end := int64(off + size); end > st.Size() {
		return n.fs.toErrno("fallocate", n.key(), n.resizeLocked(st, end))
	}
	return 0
}

// Fsync implements fusefs.NodeFsyncer, for fsync on a node without a
// handle of ours.
func (n *file) Fsync(ctx context.Context, fh fusefs.FileHandle, flags uint32) syscall.Errno {
	return n.fs.toErrno("fsync", n.key(), n.save(ctx))
}

// Setattr implements fusefs.NodeSetattrer: truncate, chmod, chown and
// utimens. While the file is open for writing, changes are saved with its
// content at the next close or fsync: tar and cp set the mode and times on
// the open file just before closing it, and that costs no extra request.
// Otherwise they are saved at once, like a write and close.
//
// The kernel passes no handle for fchmod, fchown and futimens, only for
// ftruncate, so an open writer is recognised by its staging copy.
func (n *file) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.fs.refuseWrite(); errno != 0 {
		return errno
	}
	// A chmod must not turn a link it took for a file into a file.
	if errno := n.checkKind(ctx, true); errno != 0 {
		return errno
	}
	size, resized := in.GetSize()
	if resized {
		if err := n.truncate(ctx, int64(size)); err != nil {
			return n.fs.toErrno("truncate", n.key(), err)
		}
	}
	changed := n.setMeta(in)
	switch {
	case n.writerOpen():
	case resized:
		if err := n.save(ctx); err != nil {
			return n.fs.toErrno("truncate", n.key(), err)
		}
		n.dropIdleStaging() // a truncation by name, done
	case changed:
		if err := n.saveMeta(ctx); err != nil {
			return n.fs.toErrno("setattr", n.key(), err)
		}
	}
	return n.Getattr(ctx, fh, out)
}

// writerOpen reports whether a handle that will save the file at close is
// open. A closed handle no longer counts, though the kernel releases it
// later: rsync sets the times by path right after close, and those must
// not wait for a close that has already happened.
func (n *file) writerOpen() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.act != nil && n.act.writing > 0 && n.act.st != nil
}

// setWriting marks h as a handle whose close will save the file, or no
// longer.
func (n *file) setWriting(h *handle, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if h.open != on {
		h.open = on
		if on {
			n.activeLocked().writing++
		} else {
			n.activeLocked().writing--
		}
	}
}

// setMeta applies mode, owner and time changes to attr; it reports whether
// anything changed.
func (n *file) setMeta(in *fuse.SetAttrIn) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	changed := n.fs.applyAttr(&n.attr, in)
	if changed {
		n.activeLocked().metaDirty = true
	}
	return changed
}

// applyAttr applies the mode, owner and time changes of in to e (its file
// type stays) and reports whether there were any. The kernel has checked
// that the caller may make them.
func (f *FS) applyAttr(e *vfs.Entry, in *fuse.SetAttrIn) bool {
	changed := false
	if m, ok := in.GetMode(); ok {
		e.Mode = e.Kind() | m&0o7777
		changed = true
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		if !e.Owner {
			e.UID, e.GID = f.opts.UID, f.opts.GID
		}
		if uok {
			e.UID = uid
		}
		if gok {
			e.GID = gid
		}
		e.Owner = true
		changed = true
	}
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if mok || aok || changed {
		e.Touch(false)
		e.Meta = true
	}
	if mok {
		e.SetMtime(mtime)
	}
	if aok {
		e.SetAtime(atime)
	}
	return changed || mok || aok
}
