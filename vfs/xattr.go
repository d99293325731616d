package vfs

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Extended attributes are stored as s3fs stores them: one metadata key,
// "xattr", holding a JSON object of names to base64 values,
// percent-encoded. That is user.* and, as on s3fs, names without a
// namespace (FUSE passes them through). The kernel's own namespaces
// (security, trusted, system: capabilities, SELinux labels, ACLs) have no
// meaning on S3: reads find nothing, writes are refused. S3 keeps at most 2 KiB of user metadata per object, which
// bounds what fits.

// MetaXattr is the metadata key of the extended attributes.
const MetaXattr = "xattr"

// maxUserMeta is S3's limit on an object's user metadata, keys and
// values together.
const maxUserMeta = 2 << 10

// ParseXattrs reads the "xattr" metadata value; nil when it holds none or
// cannot be read.
func ParseXattrs(s string) map[string][]byte {
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

// FormatXattrs is the "xattr" metadata value of xs ("" for none).
func FormatXattrs(xs map[string][]byte) string {
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

// StoredXattr reports whether name is one this filesystem stores.
func StoredXattr(name string) bool {
	for _, ns := range []string{"security.", "trusted.", "system."} {
		if strings.HasPrefix(name, ns) {
			return false
		}
	}
	return name != "" && name != "user."
}

// GetXattr copies the value of name in xs to dest, as getxattr(2) does.
func GetXattr(xs map[string][]byte, name string, dest []byte) (uint32, syscall.Errno) {
	v, ok := xs[name]
	switch {
	case !ok:
		return 0, unix.ENODATA
	case len(dest) < len(v):
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// ListXattrs writes the names in xs to dest, as listxattr(2) does.
func ListXattrs(xs map[string][]byte, dest []byte) (uint32, syscall.Errno) {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(xs)) {
		b = append(append(b, k...), 0)
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

// SetXattr applies setxattr(2) (value non-nil) or removexattr(2) to e.
func SetXattr(e *Entry, name string, value []byte, flags uint32) syscall.Errno {
	if !StoredXattr(name) {
		return syscall.EOPNOTSUPP
	}
	_, exists := e.Xattrs()[name]
	switch {
	case value == nil && !exists:
		return unix.ENODATA
	case value != nil && flags&unix.XATTR_CREATE != 0 && exists:
		return syscall.EEXIST
	case value != nil && flags&unix.XATTR_REPLACE != 0 && !exists:
		return unix.ENODATA
	}
	xs := maps.Clone(e.Xattrs())
	if value == nil {
		delete(xs, name)
	} else {
		if xs == nil {
			xs = make(map[string][]byte)
		}
		xs[name] = append([]byte{}, value...)
	}
	size := 0
	for k, v := range ObjectMeta(Entry{Stored: Stored{more: &extras{foreign: e.extras().foreign, xattrs: xs}}}, "", false).User {
		size += len(k) + len(v)
	}
	if size > maxUserMeta-200 { // room for mode, owner and times
		return syscall.E2BIG
	}
	e.setXattrs(xs)
	e.Touch(false)
	e.Meta = true
	return 0
}
