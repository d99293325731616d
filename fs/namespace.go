package fs

import (
	"context"
	"errors"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mount-ws/bucket"
	"mount-ws/vfs"
)

var (
	_ fusefs.NodeCreater   = (*dir)(nil)
	_ fusefs.NodeMkdirer   = (*dir)(nil)
	_ fusefs.NodeMknoder   = (*dir)(nil)
	_ fusefs.NodeUnlinker  = (*dir)(nil)
	_ fusefs.NodeRmdirer   = (*dir)(nil)
	_ fusefs.NodeRenamer   = (*dir)(nil)
	_ fusefs.NodeSymlinker = (*dir)(nil)
	_ fusefs.NodeLinker    = (*dir)(nil)
	_ fusefs.NodeSetattrer = (*dir)(nil)
)

// newEntry is the entry of something the caller of ctx creates in d now:
// owned by the caller, or, in a set-group-ID directory, by the caller and
// the directory's group, and a new directory there is set-group-ID too (as
// Linux does).
func (d *dir) newEntry(ctx context.Context, mode uint32) vfs.Entry {
	e := vfs.Entry{Meta: true, Stored: vfs.Stored{Mode: mode, UID: d.fs.opts.UID, GID: d.fs.opts.GID, Owner: true}}
	e.SetModified(time.Now())
	if c, ok := ctx.(*fuse.Context); ok {
		e.UID, e.GID = c.Caller.Uid, c.Caller.Gid
	}
	var parent fuse.Attr
	d.mu.Lock()
	d.fs.fillAttr(&parent, d.attr)
	d.mu.Unlock()
	if parent.Mode&syscall.S_ISGID != 0 {
		e.GID = parent.Gid
		if mode&syscall.S_IFMT == syscall.S_IFDIR {
			e.Mode |= syscall.S_ISGID
		}
	}
	return e
}

// checkName refuses, before any request, a name that Linux or an S3 key
// in d cannot hold: ENAMETOOLONG for a name over 255 bytes or a key over
// S3's 1,024 (with the workspace prefix; a directory's key is its marker,
// "name/"), else EINVAL.
func (d *dir) checkName(name string, isDir bool) syscall.Errno {
	if len(name) > vfs.MaxNameLen {
		return syscall.ENAMETOOLONG
	}
	if vfs.NameProblem(name) != "" {
		return syscall.EINVAL
	}
	key := vfs.ChildKey(d.key(), name)
	if isDir {
		key += "/"
	}
	if err := d.fs.b.CheckKey(key); err != nil {
		if errors.Is(err, bucket.ErrKeyTooLong) {
			return syscall.ENAMETOOLONG
		}
		return syscall.EINVAL
	}
	return 0
}

// Create implements fusefs.NodeCreater. The object is written when the
// file is closed (or fsynced), with what was written by then.
func (d *dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	if errno := d.fs.refuseWrite(); errno != 0 {
		return nil, nil, 0, errno
	}
	if errno := d.checkName(name, false); errno != 0 {
		return nil, nil, 0, errno
	}
	key := vfs.ChildKey(d.key(), name)
	e := d.newEntry(ctx, syscall.S_IFREG|mode&0o7777)
	n := &file{fs: d.fs}
	vh, err := d.fs.files.Created(key, n, e, flags&syscall.O_APPEND != 0)
	if err != nil {
		return nil, nil, 0, d.fs.toErrno("create", key, err)
	}
	n.state = vh.File()
	d.fs.fillAttr(&out.Attr, e)
	out.SetEntryTimeout(d.fs.opts.MetadataTTL)
	out.SetAttrTimeout(d.fs.opts.MetadataTTL)
	ch := d.NewInode(ctx, n, fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: d.fs.inos.Take(key, &n.Inode)})
	d.setEntry(name, &e)
	d.entriesChanged()
	return ch, &handle{n: n, h: vh}, 0, 0
}

// Mkdir implements fusefs.NodeMkdirer: a "name/" marker object, with the
// mode and time as metadata.
func (d *dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if errno := d.fs.refuseWrite(); errno != 0 {
		return nil, errno
	}
	if errno := d.checkName(name, true); errno != 0 {
		return nil, errno
	}
	key := vfs.ChildKey(d.key(), name)
	e, err := d.fs.names.MakeDir(ctx, key, d.newEntry(ctx, syscall.S_IFDIR|mode&0o7777))
	if err != nil {
		return nil, d.fs.toErrno("mkdir", key, err)
	}
	d.entriesChanged()
	ch := d.childInode(ctx, name, e, out)
	if nd, ok := ch.Operations().(*dir); ok {
		nd.knownEmpty()
	}
	return ch, 0
}

// knownEmpty records that the directory was just created here, so it is
// empty: lookups of the files a program then creates in it (tar, cp -r,
// git) are answered without asking S3 whether they exist.
func (d *dir) knownEmpty() {
	d.c.InstallEmpty()
}

// Mknod implements fusefs.NodeMknoder as s3fs stores special files: an
// empty object whose mode metadata carries the file type (FIFO, socket,
// character or block device, or a regular file) and rdev the device. The
// kernel has checked that only root makes device nodes.
func (d *dir) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if errno := d.fs.refuseWrite(); errno != 0 {
		return nil, errno
	}
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG, syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
	default:
		return nil, syscall.EINVAL
	}
	if errno := d.checkName(name, false); errno != 0 {
		return nil, errno
	}
	key := vfs.ChildKey(d.key(), name)
	e := d.newEntry(ctx, mode)
	if k := mode & syscall.S_IFMT; k == syscall.S_IFCHR || k == syscall.S_IFBLK {
		e.Rdev = dev
	}
	e, err := d.fs.names.MakeNode(ctx, key, e)
	if err != nil {
		return nil, d.fs.toErrno("mknod", key, err)
	}
	d.entriesChanged()
	return d.childInode(ctx, name, e, out), 0
}

// Link implements fusefs.NodeLinker: S3 has no hard links (an object has
// one key), so, as s3fs does, the answer is that the filesystem does not
// support them; programs such as cp -l and git then copy instead.
func (d *dir) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if errno := d.fs.refuseWrite(); errno != 0 {
		return nil, errno
	}
	return nil, syscall.EOPNOTSUPP
}

// Symlink implements fusefs.NodeSymlinker the way s3fs stores links: the
// object holds the target, its mode metadata says S_IFLNK.
func (d *dir) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if errno := d.fs.refuseWrite(); errno != 0 {
		return nil, errno
	}
	if errno := d.checkName(name, false); errno != 0 {
		return nil, errno
	}
	key := vfs.ChildKey(d.key(), name)
	e, err := d.fs.names.MakeLink(ctx, key, target, d.newEntry(ctx, syscall.S_IFLNK|0o777))
	if err != nil {
		return nil, d.fs.toErrno("symlink", key, err)
	}
	d.entriesChanged()
	return d.childInode(ctx, name, e, out), 0
}

// Unlink implements fusefs.NodeUnlinker. An open file's unsaved data goes
// with it, as on any filesystem; if the DELETE fails, the file and its
// unsaved data stay, still queued for upload.
func (d *dir) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := d.fs.refuseWrite(); errno != 0 {
		return errno
	}
	key := vfs.ChildKey(d.key(), name)
	var f *vfs.File
	if n, ok := d.childFile(name); ok {
		f = n.state
	}
	// Remove releases the file's lock before the kernel is told of a
	// vanished directory below (a rename of that directory would wait
	// for it, holding the lock the notification needs).
	if err := d.fs.names.Remove(ctx, key, f); err != nil {
		return d.fs.toErrno("unlink", key, err)
	}
	d.entriesChanged()
	d.vanishIfEmpty(ctx, true)
	return 0
}

// treeFiles appends the files under d, at any depth, to files.
func (d *dir) treeFiles(files []*vfs.File) []*vfs.File {
	for _, ch := range d.Children() {
		switch n := ch.Operations().(type) {
		case *dir:
			files = n.treeFiles(files)
		case *file:
			files = append(files, n.state)
		}
	}
	return files
}

// Rmdir implements fusefs.NodeRmdirer: only an empty directory goes, by
// deleting its marker (an implicit directory has none).
func (d *dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := d.fs.refuseWrite(); errno != 0 {
		return errno
	}
	key := vfs.ChildKey(d.key(), name)
	if err := d.fs.names.RemoveDir(ctx, key, d.localFiles(name)); err != nil {
		return d.fs.toErrno("rmdir", key, err)
	}
	d.entriesChanged()
	d.vanishIfEmpty(ctx, true)
	return 0
}

// localFiles returns the files in memory of the directory name, whose
// content S3 may not have yet.
func (d *dir) localFiles(name string) []*vfs.File {
	ch := d.GetChild(name)
	if ch == nil {
		return nil
	}
	var files []*vfs.File
	for _, c := range ch.Children() {
		if f, ok := c.Operations().(*file); ok {
			files = append(files, f.state)
		}
	}
	return files
}

// Setattr implements fusefs.NodeSetattrer for directories: mode, owner and
// times are kept on the node and stored on the directory's marker.
func (d *dir) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := d.fs.refuseWrite(); errno != 0 {
		return errno
	}
	if errno := d.changeMeta(ctx, "setattr", func(e *vfs.Entry) syscall.Errno {
		d.fs.applyAttr(e, in)
		return 0
	}); errno != 0 {
		return errno
	}
	return d.Getattr(ctx, fh, out)
}

// knownAttr returns the directory's attributes with its marker's metadata
// read (a HEAD, once), so that a change keeps what is stored.
func (d *dir) knownAttr(ctx context.Context) (vfs.Entry, error) {
	d.mu.Lock()
	e := d.attr
	d.mu.Unlock()
	key := d.key()
	if e.Meta || key == "" {
		return e, nil
	}
	m, err := d.fs.names.DirMeta(ctx, key)
	if err != nil {
		return vfs.Entry{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.attr.Meta {
		if !d.attr.Ctime().IsZero() { // entriesChanged ran: its times are newer
			m.SetMtime(d.attr.Mtime())
			m.SetCtime(d.attr.Ctime())
		}
		d.attr = m
	}
	return d.attr, nil
}

// changeMeta applies change to the directory's attributes and stores them
// on its marker (the root has none: its changes last until unmount). The
// node keeps its old attributes when storing fails. Two changes at once
// may race; the later store wins, as on S3.
func (d *dir) changeMeta(ctx context.Context, op string, change func(*vfs.Entry) syscall.Errno) syscall.Errno {
	if errno := d.fs.refuseWrite(); errno != 0 {
		return errno
	}
	key := d.key()
	if _, err := d.knownAttr(ctx); err != nil {
		return d.fs.toErrno(op, key, err)
	}
	d.mu.Lock()
	e := d.attr
	d.mu.Unlock()
	if errno := change(&e); errno != 0 {
		return errno
	}
	// The node shows the change only once it is stored: a chmod that
	// failed must not look as if it had worked. The parent's listing
	// shows it too: the kernel may forget this node, and the next one is
	// made from the listing, which must not show the old mode.
	e, err := d.fs.names.SaveDirMeta(ctx, key, e)
	if err != nil {
		return d.fs.toErrno(op, key, err)
	}
	d.mu.Lock()
	d.attr = e
	d.mu.Unlock()
	return 0
}

// Rename implements fusefs.NodeRenamer. S3 has no rename: a file is copied
// on the server (or, with unsaved changes, uploaded under the new name)
// and then deleted; a directory is every object under it copied, then
// deleted. Objects are deleted only once every copy succeeded, so a
// failure part-way leaves everything reachable under the old name (and
// some also under the new one), and says so in the log.
//
// RENAME_NOREPLACE is honoured; RENAME_EXCHANGE cannot be done atomically
// on S3 and answers EINVAL, as Linux does for a flag a filesystem lacks.
func (d *dir) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := d.fs.refuseWrite(); errno != 0 {
		return errno
	}
	if flags&fusefs.RENAME_EXCHANGE != 0 {
		return syscall.EINVAL
	}
	np, ok := newParent.(*dir)
	if !ok {
		return syscall.EXDEV
	}
	if errno := np.checkName(newName, false); errno != 0 {
		return errno
	}
	src := vfs.ChildKey(d.key(), name)
	dst := vfs.ChildKey(np.key(), newName)
	se, found, errno := d.find(ctx, name)
	if errno != 0 {
		return errno
	}
	if !found {
		return syscall.ENOENT
	}
	de, exists, errno := np.find(ctx, newName)
	if errno != 0 {
		return errno
	}
	r := vfs.Renaming{From: src, To: dst, Source: se, NoReplace: flags&renameNoReplace != 0}
	if exists {
		r.Target = &de
		r.TargetTree = np.localFiles(newName)
		if n, ok := np.childFile(newName); ok {
			r.TargetFile = n.state
		}
	}
	var movedDir *dir
	switch n := d.childNode(name).(type) {
	case *file:
		r.SourceFile = n.state
	case *dir:
		movedDir, r.SourceTree = n, n.treeFiles(nil)
	}
	_, replaced, err := d.fs.names.Rename(ctx, r)
	if movedDir != nil && err == nil {
		movedDir.mu.Lock()
		movedDir.attr.Touch(false) // a rename changes ctime
		movedDir.mu.Unlock()
	}
	if replaced {
		// The target holds the copy now, the source stays: the kernel
		// keeps the target's old inode for the name, with its size,
		// until told (after this rename returns and unlocks the
		// directory).
		np.entriesChanged()
		d.fs.background(func(context.Context) { np.NotifyEntry(newName) })
	}
	if err != nil {
		return d.fs.toErrno("rename", src, err)
	}
	if ch := d.GetChild(name); ch != nil {
		d.fs.inos.Moved(dst, ch.StableAttr().Ino) // go-fuse moves the node next
	}
	d.entriesChanged()
	np.entriesChanged()
	if np != d {
		d.vanishIfEmpty(ctx, false)
	}
	return 0
}

// renameNoReplace is RENAME_NOREPLACE of renameat2(2), which go-fuse does
// not name.
const renameNoReplace = 0x1

// notifyWait bounds how long a removal waits for the kernel to take the
// news that a directory vanished with it (see vanishIfEmpty).
const notifyWait = 100 * time.Millisecond

// vanishIfEmpty makes an implicit directory (one without a marker object)
// disappear once its last child is gone, as it has in S3, and the same for
// its parents. It asks S3 only when what the directory knows of its
// children does not already show some remain.
//
// wait says whether to wait, for up to notifyWait, for the kernel to take
// the news, so that the program that removed the last child finds the
// directory gone. Never longer: the notification needs the lock of d's
// parent, which the kernel may hold for a request that waits for this
// one (an rmdir or rename of d at the same time); rename does not wait at
// all, since the kernel may hold that lock for the rename itself.
func (d *dir) vanishIfEmpty(ctx context.Context, wait bool) {
	for d != nil {
		name, p := d.Parent()
		if p == nil || name == "" {
			return // the root, or no longer in the tree
		}
		parent, ok := p.Operations().(*dir)
		if !ok {
			return
		}
		if !d.fs.names.Vanished(ctx, d.key(), d.c) {
			return
		}
		// Tell the kernel the name is gone, so that the next lookup
		// comes here.
		told := make(chan struct{})
		if d.fs.background(func(context.Context) { p.NotifyEntry(name); close(told) }) && wait {
			select {
			case <-told:
			case <-time.After(notifyWait):
			}
		}
		d = parent
	}
}
