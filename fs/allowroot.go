package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ownerOrRoot is FUSE's allow_root: the kernel lets every user in
// (allow_other), and every request that could reach a file from a user who
// is neither root nor the owner of the mount is refused with EACCES. The
// kernel has no such option; libfuse implements it the same way. Every
// path to a file starts at a request that names a parent or the root
// (lookup, getattr, open, create, ...), so gating those is enough: a user
// who cannot look anything up holds no handle to read or write through.
type ownerOrRoot struct {
	fuse.RawFileSystem
	owner uint32
}

func (g ownerOrRoot) refused(h *fuse.InHeader) bool { return h.Uid != 0 && h.Uid != g.owner }

func (g ownerOrRoot) Lookup(c <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if g.refused(h) {
		return fuse.EACCES
	}
	return g.RawFileSystem.Lookup(c, h, name, out)
}

func (g ownerOrRoot) GetAttr(c <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if g.refused(&in.InHeader) {
		return fuse.EACCES
	}
	return g.RawFileSystem.GetAttr(c, in, out)
}

func (g ownerOrRoot) Statx(c <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	if g.refused(&in.InHeader) {
		return fuse.EACCES
	}
	return g.RawFileSystem.Statx(c, in, out)
}

func (g ownerOrRoot) SetAttr(c <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	if g.refused(&in.InHeader) {
		return fuse.EACCES
	}
	return g.RawFileSystem.SetAttr(c, in, out)
}

func (g ownerOrRoot) Access(c <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	if g.refused(&in.InHeader) {
		return fuse.EACCES
	}
	return g.RawFileSystem.Access(c, in)
}

func (g ownerOrRoot) Open(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if g.refused(&in.InHeader) {
		return fuse.EACCES
	}
	return g.RawFileSystem.Open(c, in, out)
}

func (g ownerOrRoot) OpenDir(c <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if g.refused(&in.InHeader) {
		return fuse.EACCES
	}
	return g.RawFileSystem.OpenDir(c, in, out)
}

func (g ownerOrRoot) Create(c <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	if g.refused(&in.InHeader) {
		return fuse.EACCES
	}
	return g.RawFileSystem.Create(c, in, name, out)
}

func (g ownerOrRoot) Mknod(c <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	if g.refused(&in.InHeader) {
		return fuse.EACCES
	}
	return g.RawFileSystem.Mknod(c, in, name, out)
}

func (g ownerOrRoot) Mkdir(c <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	if g.refused(&in.InHeader) {
		return fuse.EACCES
	}
	return g.RawFileSystem.Mkdir(c, in, name, out)
}

func (g ownerOrRoot) Unlink(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if g.refused(h) {
		return fuse.EACCES
	}
	return g.RawFileSystem.Unlink(c, h, name)
}

func (g ownerOrRoot) Rmdir(c <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if g.refused(h) {
		return fuse.EACCES
	}
	return g.RawFileSystem.Rmdir(c, h, name)
}

func (g ownerOrRoot) Rename(c <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	if g.refused(&in.InHeader) {
		return fuse.EACCES
	}
	return g.RawFileSystem.Rename(c, in, oldName, newName)
}

func (g ownerOrRoot) Link(c <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	if g.refused(&in.InHeader) {
		return fuse.EACCES
	}
	return g.RawFileSystem.Link(c, in, name, out)
}

func (g ownerOrRoot) Symlink(c <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	if g.refused(h) {
		return fuse.EACCES
	}
	return g.RawFileSystem.Symlink(c, h, target, name, out)
}

func (g ownerOrRoot) Readlink(c <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	if g.refused(h) {
		return nil, fuse.EACCES
	}
	return g.RawFileSystem.Readlink(c, h)
}

func (g ownerOrRoot) StatFs(c <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	if g.refused(h) {
		return fuse.EACCES
	}
	return g.RawFileSystem.StatFs(c, h, out)
}
