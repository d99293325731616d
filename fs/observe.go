package fs

import (
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// OpObserver is told about every FUSE request the mount answers: its
// type ("lookup", "read", ...), its errno (0 for success) and how long it
// took. It is called concurrently on the request path, so it must be
// cheap and must not block.
type OpObserver func(op string, errno syscall.Errno, elapsed time.Duration)

// observed reports every answered request to an OpObserver. Requests that
// have no answer (forget, release) or are rare and answered by the kernel's
// defaults (ioctl, locks) are passed through unobserved.
type observed struct {
	fuse.RawFileSystem
	report OpObserver
}

func (o observed) done(op string, start time.Time, st fuse.Status) fuse.Status {
	o.report(op, syscall.Errno(st), time.Since(start))
	return st
}

func (o observed) Lookup(c <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	return o.done("lookup", time.Now(), o.RawFileSystem.Lookup(c, h, name, out))
}

func (o observed) GetAttr(c <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	return o.done("getattr", time.Now(), o.RawFileSystem.GetAttr(c, in, out))
}

func (o observed) Statx(c <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	return o.done("statx", time.Now(), o.RawFileSystem.Statx(c, in, out))
}

func (o observed) SetAttr(c <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	return o.done("setattr", time.Now(), o.RawFileSystem.SetAttr(c, in, out))
}

func (o observed) Access(c <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	return o.done("access", time.Now(), o.RawFileSystem.Access(c, in))
}

func (o observed) Mknod(c <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	return o.done("mknod", time.Now(), o.RawFileSystem.Mknod(c, in, name, out))
}

func (o observed) Mkdir(c <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	return o.done("mkdir", time.Now(), o.RawFileSystem.Mkdir(c, in, name, out))
}

func (o observed) Unlink(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return o.done("unlink", time.Now(), o.RawFileSystem.Unlink(c, h, name))
}

func (o observed) Rmdir(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return o.done("rmdir", time.Now(), o.RawFileSystem.Rmdir(c, h, name))
}

func (o observed) Rename(c <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	return o.done("rename", time.Now(), o.RawFileSystem.Rename(c, in, oldName, newName))
}

func (o observed) Link(c <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	return o.done("link", time.Now(), o.RawFileSystem.Link(c, in, name, out))
}

func (o observed) Symlink(c <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	return o.done("symlink", time.Now(), o.RawFileSystem.Symlink(c, h, target, name, out))
}

func (o observed) Readlink(c <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	start := time.Now()
	out, st := o.RawFileSystem.Readlink(c, h)
	return out, o.done("readlink", start, st)
}

func (o observed) GetXAttr(c <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.GetXAttr(c, h, attr, dest)
	return n, o.done("getxattr", start, st)
}

func (o observed) ListXAttr(c <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.ListXAttr(c, h, dest)
	return n, o.done("listxattr", start, st)
}

func (o observed) SetXAttr(c <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	return o.done("setxattr", time.Now(), o.RawFileSystem.SetXAttr(c, in, attr, data))
}

func (o observed) RemoveXAttr(c <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	return o.done("removexattr", time.Now(), o.RawFileSystem.RemoveXAttr(c, h, attr))
}

func (o observed) Create(c <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	return o.done("create", time.Now(), o.RawFileSystem.Create(c, in, name, out))
}

func (o observed) Open(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return o.done("open", time.Now(), o.RawFileSystem.Open(c, in, out))
}

func (o observed) Read(c <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	start := time.Now()
	r, st := o.RawFileSystem.Read(c, in, buf)
	return r, o.done("read", start, st)
}

func (o observed) Lseek(c <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	return o.done("lseek", time.Now(), o.RawFileSystem.Lseek(c, in, out))
}

func (o observed) Write(c <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.Write(c, in, data)
	return n, o.done("write", start, st)
}

// Writev is observed as "write" unless the filesystem has none (ENOSYS):
// go-fuse then calls Write, which is observed itself.
func (o observed) Writev(c <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.Writev(c, in, data)
	if st == fuse.ENOSYS {
		return n, st
	}
	return n, o.done("write", start, st)
}

func (o observed) CopyFileRange(c <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	start := time.Now()
	n, st := o.RawFileSystem.CopyFileRange(c, in)
	return n, o.done("copy_file_range", start, st)
}

func (o observed) Flush(c <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	return o.done("flush", time.Now(), o.RawFileSystem.Flush(c, in))
}

func (o observed) Fsync(c <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return o.done("fsync", time.Now(), o.RawFileSystem.Fsync(c, in))
}

func (o observed) Fallocate(c <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	return o.done("fallocate", time.Now(), o.RawFileSystem.Fallocate(c, in))
}

func (o observed) OpenDir(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	return o.done("opendir", time.Now(), o.RawFileSystem.OpenDir(c, in, out))
}

func (o observed) ReadDir(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return o.done("readdir", time.Now(), o.RawFileSystem.ReadDir(c, in, out))
}

func (o observed) ReadDirPlus(c <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return o.done("readdirplus", time.Now(), o.RawFileSystem.ReadDirPlus(c, in, out))
}

func (o observed) FsyncDir(c <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	return o.done("fsyncdir", time.Now(), o.RawFileSystem.FsyncDir(c, in))
}

func (o observed) StatFs(c <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	return o.done("statfs", time.Now(), o.RawFileSystem.StatFs(c, h, out))
}
