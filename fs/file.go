package fs

import (
	"context"
	"errors"
	iofs "io/fs"
	"log/slog"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"mount-ws/bucket"
	"mount-ws/vfs"
)

// file is a regular file or a symbolic link: a node of go-fuse's tree.
// Its key is its path in the tree, so a rename moves it without
// bookkeeping here. What the mount knows of the file is its vfs.File,
// which outlives the node when the kernel forgets it with data still to
// save: the next node made for the name takes the same File
// (vfs.Files.Adopt).
type file struct {
	fusefs.Inode
	fs    *FS
	state *vfs.File
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
	n := &file{fs: f}
	n.state = f.files.NewFile(n, e)
	return n
}

func (n *file) key() string { return n.Path(nil) }

var _ vfs.Node = (*file)(nil)

// TreeKey implements vfs.Node.
func (n *file) TreeKey() (string, bool) {
	if n.outOfTree() {
		return "", false
	}
	return n.key(), true
}

// Kind implements vfs.Node.
func (n *file) Kind() uint32 { return n.StableAttr().Mode }

// AttrsChanged implements vfs.Node: the kernel is told to forget the
// attributes it caches for the file, so its next stat asks again.
func (n *file) AttrsChanged() {
	if errno := n.NotifyContent(-1, 0); errno != 0 && errno != syscall.ENOENT {
		n.fs.log.Debug("could not invalidate cached attributes", slog.String("path", n.key()), slog.String("errno", errno.Error()))
	}
}

// OnForget implements fusefs.NodeOnForgetter: the kernel forgot the file,
// and its inode number may go to the next node made for its name.
func (n *file) OnForget() {
	n.fs.releaseIno(&n.Inode)
	n.fs.counts.forgotten.Add(1)
}

// openVersion returns the version of the file an open reads. A read-only
// open of a file whose pages the kernel does not cache yet takes what the
// lookup or listing said, unchecked (vfs.File.MayReadUnchecked): its
// first GET carries that ETag, and if the object was replaced meanwhile,
// the handle moves to the new one before it returns any data
// (vfs.Files.Read), so a fresh open still reads what another client just
// wrote, without a HEAD per open. Any other open asks S3
// (vfs.Files.Revalidate), because the kernel may serve the old version's
// cached pages without a request, and a writer must keep the object's
// metadata.
func (n *file) openVersion(ctx context.Context, write bool) (e vfs.Entry, unchecked bool, err error) {
	if !n.state.MayReadUnchecked(write) {
		e, err = n.fs.files.Revalidate(ctx, n.state)
		return e, false, err
	}
	// The file type must be known (a link in a listing looks like a file).
	if errno := n.checkKind(ctx, false); errno != 0 {
		return vfs.Entry{}, false, errno
	}
	return n.state.Attr(), true, nil
}

// Getattr implements fusefs.NodeGetattrer.
func (n *file) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if e, gone := n.state.Unlinked(); gone {
		// Still open somewhere (fstat): what it was, with no name left.
		n.fs.fillAttr(&out.Attr, e)
		out.Attr.Ino, out.Attr.Nlink = n.StableAttr().Ino, 0
		return 0
	}
	if err := n.fillMeta(ctx); err != nil {
		return n.fs.toErrno("getattr", n.key(), err)
	}
	e, err := n.fs.files.Current(ctx, n.state)
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
	e := n.state.Attr()
	if must {
		var err error
		if e, err = n.fs.files.Learn(ctx, n.state); err != nil {
			return n.fs.toErrno("lookup", n.key(), err)
		}
	}
	if n.wrongKind(e) {
		return syscall.ESTALE
	}
	return 0
}

// fillMeta reads the file's metadata, with its siblings', when only a
// listing described it so far (see dir.wantsMeta).
func (n *file) fillMeta(ctx context.Context) error {
	if p := n.parentDir(); p != nil && n.state.MetaUnknown() && p.wantsMeta() {
		return p.fillMeta(ctx, false, baseName(n.key()))
	}
	return nil
}

// Readlink implements fusefs.NodeReadlinker: the object holds the target.
func (n *file) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	e := n.state.Attr()
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
	n.state.SetLinkTarget(e.ETag, string(target))
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
	old, gone := n.state.Unlinked()
	if gone {
		if n.state.Replaced() {
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
	vh, keep, staged, err := n.fs.files.Open(ctx, n.state, e, vfs.OpenMode{
		Write: write, Trunc: flags&syscall.O_TRUNC != 0, Append: flags&syscall.O_APPEND != 0, Unchecked: unchecked,
	})
	if errors.Is(err, vfs.ErrWrongKind) {
		return nil, 0, syscall.ESTALE // a link taken for a file: look it up again
	}
	if err != nil {
		return nil, 0, n.fs.toErrno("open", n.key(), err)
	}
	var fuseFlags uint32
	if keep {
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
	}
	if !write && !staged {
		// Nothing to upload at its close: spare the kernel the FLUSH
		// round trip (a writer opened later saves at its own close).
		fuseFlags |= fuse.FOPEN_NOFLUSH
	}
	h := &handle{n: n, h: vh}
	if !n.fs.opts.ReadOnly {
		return h, fuseFlags, 0
	}
	fh, errno := n.passThrough(h, e)
	if errno != 0 {
		n.fs.files.CloseHandle(vh)
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
	err := n.fs.files.Grow(n.state, int64(off+size))
	if errors.Is(err, vfs.ErrNotStaged) {
		return syscall.EBADF // the kernel only sends it for a file open for writing
	}
	return n.fs.toErrno("fallocate", n.key(), err)
}

// Fsync implements fusefs.NodeFsyncer, for fsync on a node without a
// handle of ours.
func (n *file) Fsync(ctx context.Context, fh fusefs.FileHandle, flags uint32) syscall.Errno {
	return n.fs.toErrno("fsync", n.key(), n.fs.files.Save(ctx, n.state))
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
		if err := n.fs.files.Truncate(ctx, n.state, int64(size)); err != nil {
			return n.fs.toErrno("truncate", n.key(), err)
		}
	}
	changed := n.state.ChangeMeta(func(e *vfs.Entry) bool { return n.fs.applyAttr(e, in) })
	switch {
	case n.state.WriterOpen():
	case resized:
		if err := n.fs.files.Save(ctx, n.state); err != nil {
			return n.fs.toErrno("truncate", n.key(), err)
		}
		n.fs.files.DropIdleStaging(n.state) // a truncation by name, done
	case changed:
		if err := n.fs.files.SaveMeta(ctx, n.state); err != nil {
			return n.fs.toErrno("setattr", n.key(), err)
		}
	}
	return n.Getattr(ctx, fh, out)
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
