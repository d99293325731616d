package fs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strings"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// Extended attributes are stored as s3fs stores them: one metadata key,
// "xattr", holding a JSON object of names to base64 values,
// percent-encoded. That is user.* and, as on s3fs, names without a
// namespace (FUSE passes them through). The kernel's own namespaces
// (security, trusted, system: capabilities, SELinux labels, ACLs) have no
// meaning on S3: reads find nothing, writes are refused. S3 keeps at most 2 KiB of user metadata per object, which
// bounds what fits.

const metaXattr = "xattr"

// maxUserMeta is S3's limit on an object's user metadata, keys and
// values together.
const maxUserMeta = 2 << 10

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

// parseXattrs reads the "xattr" metadata value; nil when it holds none or
// cannot be read.
func parseXattrs(s string) map[string][]byte {
	if s == "" {
		return nil
	}
	plain, err := url.PathUnescape(s)
	if err != nil {
		return nil
	}
	var enc map[string]string
	if json.Unmarshal([]byte(plain), &enc) != nil || len(enc) == 0 {
		return nil
	}
	out := make(map[string][]byte, len(enc))
	for k, v := range enc {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil
		}
		out[k] = b
	}
	return out
}

// formatXattrs is the "xattr" metadata value of xs ("" for none).
func formatXattrs(xs map[string][]byte) string {
	if len(xs) == 0 {
		return ""
	}
	enc := make(map[string]string, len(xs))
	for k, v := range xs {
		enc[k] = base64.StdEncoding.EncodeToString(v)
	}
	b, _ := json.Marshal(enc) // a map of strings always marshals
	return url.PathEscape(string(b))
}

// storedXattr reports whether name is one this filesystem stores.
func storedXattr(name string) bool {
	for _, ns := range []string{"security.", "trusted.", "system."} {
		if strings.HasPrefix(name, ns) {
			return false
		}
	}
	return name != "" && name != "user."
}

// getXattr copies the value of name in xs to dest, as getxattr(2) does.
func getXattr(xs map[string][]byte, name string, dest []byte) (uint32, syscall.Errno) {
	v, ok := xs[name]
	switch {
	case !ok:
		return 0, unix.ENODATA
	case len(dest) < len(v):
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// listXattrs writes the names in xs to dest, as listxattr(2) does.
func listXattrs(xs map[string][]byte, dest []byte) (uint32, syscall.Errno) {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(xs)) {
		b = append(append(b, k...), 0)
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

// setXattr applies setxattr(2) (value non-nil) or removexattr(2) to e.
func setXattr(e *entry, name string, value []byte, flags uint32) syscall.Errno {
	if !storedXattr(name) {
		return syscall.EOPNOTSUPP
	}
	_, exists := e.xattrs[name]
	switch {
	case value == nil && !exists:
		return unix.ENODATA
	case value != nil && flags&unix.XATTR_CREATE != 0 && exists:
		return syscall.EEXIST
	case value != nil && flags&unix.XATTR_REPLACE != 0 && !exists:
		return unix.ENODATA
	}
	xs := maps.Clone(e.xattrs)
	if value == nil {
		delete(xs, name)
	} else {
		if xs == nil {
			xs = make(map[string][]byte)
		}
		xs[name] = append([]byte{}, value...)
	}
	size := 0
	for k, v := range objectMeta(entry{stored: stored{foreign: e.foreign, xattrs: xs}}, "", false).User {
		size += len(k) + len(v)
	}
	if size > maxUserMeta-200 { // room for mode, owner and times
		return syscall.E2BIG
	}
	e.xattrs = xs
	e.touch(false)
	e.meta = true
	return 0
}

// Getxattr implements fusefs.NodeGetxattrer.
func (n *file) Getxattr(ctx context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	if !storedXattr(name) {
		return 0, unix.ENODATA // checked by the kernel on every write: no request
	}
	if errno := n.checkKind(ctx, true); errno != 0 {
		return 0, errno
	}
	return getXattr(n.attrNow().xattrs, name, dest)
}

// Listxattr implements fusefs.NodeListxattrer.
func (n *file) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if errno := n.checkKind(ctx, true); errno != 0 {
		return 0, errno
	}
	return listXattrs(n.attrNow().xattrs, dest)
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
	n.mu.Lock()
	errno := setXattr(&n.attr, name, value, flags)
	if errno == 0 {
		n.metaDirty = true
	}
	n.mu.Unlock()
	if errno != 0 || n.writerOpen() {
		return errno // an open writer saves it at close
	}
	return n.fs.toErrno("setxattr", n.key(), n.saveMeta(ctx))
}

// Getxattr implements fusefs.NodeGetxattrer.
func (d *dir) Getxattr(ctx context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	if !storedXattr(name) {
		return 0, unix.ENODATA
	}
	e, err := d.knownAttr(ctx)
	if err != nil {
		return 0, d.fs.toErrno("getxattr", d.key(), err)
	}
	return getXattr(e.xattrs, name, dest)
}

// Listxattr implements fusefs.NodeListxattrer.
func (d *dir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	e, err := d.knownAttr(ctx)
	if err != nil {
		return 0, d.fs.toErrno("listxattr", d.key(), err)
	}
	return listXattrs(e.xattrs, dest)
}

// Setxattr implements fusefs.NodeSetxattrer, on the directory's marker.
func (d *dir) Setxattr(ctx context.Context, name string, data []byte, flags uint32) syscall.Errno {
	if data == nil {
		data = []byte{}
	}
	return d.changeMeta(ctx, "setxattr", func(e *entry) syscall.Errno { return setXattr(e, name, data, flags) })
}

// Removexattr implements fusefs.NodeRemovexattrer.
func (d *dir) Removexattr(ctx context.Context, name string) syscall.Errno {
	return d.changeMeta(ctx, "removexattr", func(e *entry) syscall.Errno { return setXattr(e, name, nil, 0) })
}
