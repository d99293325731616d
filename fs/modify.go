package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Until the write path exists, every change to the namespace is refused
// explicitly: go-fuse's defaults would let some of them (unlink) appear to
// succeed.

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

// Create implements fusefs.NodeCreater.
func (d *dir) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, d.fs.writeErrno()
}

// Mkdir implements fusefs.NodeMkdirer.
func (d *dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, d.fs.writeErrno()
}

// Mknod implements fusefs.NodeMknoder.
func (d *dir) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, d.fs.writeErrno()
}

// Unlink implements fusefs.NodeUnlinker.
func (d *dir) Unlink(ctx context.Context, name string) syscall.Errno { return d.fs.writeErrno() }

// Rmdir implements fusefs.NodeRmdirer.
func (d *dir) Rmdir(ctx context.Context, name string) syscall.Errno { return d.fs.writeErrno() }

// Rename implements fusefs.NodeRenamer.
func (d *dir) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return d.fs.writeErrno()
}

// Symlink implements fusefs.NodeSymlinker.
func (d *dir) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, d.fs.writeErrno()
}

// Link implements fusefs.NodeLinker.
func (d *dir) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return nil, d.fs.writeErrno()
}

// Setattr implements fusefs.NodeSetattrer.
func (d *dir) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return d.fs.writeErrno()
}
