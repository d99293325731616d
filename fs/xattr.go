package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"mount-ws/vfs"
)

var (
	_ fusefs.NodeGetxattrer    = (*file)(nil)
	_ fusefs.NodeSetxattrer    = (*file)(nil)
	_ fusefs.NodeRemovexattrer = (*file)(nil)
	_ fusefs.NodeListxattrer   = (*file)(nil)
	_ fusefs.NodeGetxattrer    = (*dir)(nil)
	_ fusefs.NodeSetxattrer    = (*dir)(nil)
	_ fusefs.NodeRemovexattrer = (*dir)(nil)
	_ fusefs.NodeListxattrer   = (*dir)(nil)
)

// Getxattr implements fusefs.NodeGetxattrer.
func (n *file) Getxattr(ctx context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	if !vfs.StoredXattr(name) {
		return 0, unix.ENODATA // checked by the kernel on every write: no request
	}
	if errno := n.checkKind(ctx, true); errno != 0 {
		return 0, errno
	}
	return vfs.GetXattr(n.state.Attr().Xattrs(), name, dest)
}

// Listxattr implements fusefs.NodeListxattrer.
func (n *file) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if errno := n.checkKind(ctx, true); errno != 0 {
		return 0, errno
	}
	return vfs.ListXattrs(n.state.Attr().Xattrs(), dest)
}

// Setxattr implements fusefs.NodeSetxattrer; the change is saved like a
// chmod.
func (n *file) Setxattr(ctx context.Context, name string, data []byte, flags uint32) syscall.Errno {
	if data == nil {
		data = []byte{}
	}
	return n.changeXattr(ctx, name, data, flags)
}

// Removexattr implements fusefs.NodeRemovexattrer.
func (n *file) Removexattr(ctx context.Context, name string) syscall.Errno {
	return n.changeXattr(ctx, name, nil, 0)
}

func (n *file) changeXattr(ctx context.Context, name string, value []byte, flags uint32) syscall.Errno {
	if errno := n.fs.refuseWrite(); errno != 0 {
		return errno
	}
	if errno := n.checkKind(ctx, true); errno != 0 {
		return errno
	}
	var errno syscall.Errno
	n.state.ChangeMeta(func(e *vfs.Entry) bool {
		errno = vfs.SetXattr(e, name, value, flags)
		return errno == 0
	})
	if errno != 0 || n.state.WriterOpen() {
		return errno // an open writer saves it at close
	}
	return n.fs.toErrno("setxattr", n.key(), n.fs.files.SaveMeta(ctx, n.state))
}

// Getxattr implements fusefs.NodeGetxattrer.
func (d *dir) Getxattr(ctx context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	if !vfs.StoredXattr(name) {
		return 0, unix.ENODATA
	}
	e, err := d.knownAttr(ctx)
	if err != nil {
		return 0, d.fs.toErrno("getxattr", d.key(), err)
	}
	return vfs.GetXattr(e.Xattrs(), name, dest)
}

// Listxattr implements fusefs.NodeListxattrer.
func (d *dir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	e, err := d.knownAttr(ctx)
	if err != nil {
		return 0, d.fs.toErrno("listxattr", d.key(), err)
	}
	return vfs.ListXattrs(e.Xattrs(), dest)
}

// Setxattr implements fusefs.NodeSetxattrer, on the directory's marker.
func (d *dir) Setxattr(ctx context.Context, name string, data []byte, flags uint32) syscall.Errno {
	if data == nil {
		data = []byte{}
	}
	return d.changeMeta(ctx, "setxattr", func(e *vfs.Entry) syscall.Errno { return vfs.SetXattr(e, name, data, flags) })
}

// Removexattr implements fusefs.NodeRemovexattrer.
func (d *dir) Removexattr(ctx context.Context, name string) syscall.Errno {
	return d.changeMeta(ctx, "removexattr", func(e *vfs.Entry) syscall.Errno { return vfs.SetXattr(e, name, nil, 0) })
}
