package vfs

import (
	"maps"
	"math"
	"mime"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mount-ws/bucket"
)

// Object user metadata, with the keys s3fs uses, so buckets written by
// either tool look the same through both: mode is the decimal st_mode
// (file type bits included), uid, gid and rdev decimal numbers, and the
// times decimal Unix seconds with, when not whole, nine digits of
// nanoseconds (s3fs reads the fraction as nanoseconds, rclone as a
// fraction: nine digits mean the same to both).
const (
	MetaMode  = "mode"
	MetaMtime = "mtime"
	metaAtime = "atime"
	metaCtime = "ctime"
	metaUID   = "uid"
	metaGID   = "gid"
	metaRdev  = "rdev"
)

// ownedKeys are the metadata keys mount-ws reads and writes. Every other
// key belongs to another program and is kept as it is.
var ownedKeys = []string{MetaMode, MetaMtime, metaAtime, metaCtime, metaUID, metaGID, metaRdev, MetaXattr}

// contentKeys are other programs' metadata that describe an object's bytes
// (checksums, and s3cmd's record of size, times and md5): a rewrite of the
// content drops them, since they would no longer match.
var contentKeys = []string{"md5chksum", "md5", "md5sum", "sha1", "sha256", "crc32c", "s3cmd-attrs", MetaSave}

// MetaSave names one partial save of an object by this mount (a random
// token): when the answer to a save is lost, it tells whether the object
// now in the bucket is that save (see fs, file.ownSave).
const MetaSave = "mount-ws-save"

// Stored is what an object's metadata says beyond what a listing gives.
type Stored struct {
	Mode     uint32 // full st_mode; 0 for "the default"
	UID, GID uint32
	Rdev     uint32 // device number of a device node
	Owner    bool   // uid and gid are stored
	// more holds what most objects lack, apart, so that the entry of a
	// plain object stays small (88 bytes; a listing may hold millions).
	// Copies of an entry share it: it is never changed in place (edit).
	more *extras
}

// extras are the parts of an entry that most objects lack.
type extras struct {
	// Times stored or set through this mount; zero when neither, and
	// then the object's own time stands in (see Entry.Times). A change of
	// the content clears mtime and ctime: the new object's time is both.
	// A change of metadata only is a copy, which gives the object a new
	// time: mtime is pinned to the old one, and ctime set.
	mtime, atime, ctime time.Time
	xattrs              map[string][]byte // user.* extended attributes (xattr.go)
	// foreign is the user metadata of other programs, kept on every
	// change; contentType the object's Content-Type, likewise kept.
	foreign     map[string]string
	contentType string
	linkTarget  string // a symlink's target, once read (it is the body, not metadata)
}

func (s Stored) extras() extras {
	if s.more == nil {
		return extras{}
	}
	return *s.more
}

// edit is a copy of the extras for a change, installed in s: copies of the
// entry made before keep what they had.
func (s *Stored) edit() *extras {
	x := s.extras()
	s.more = &x
	return s.more
}

// Mtime, Atime and Ctime are the times stored or set through this mount,
// zero when neither (see extras).
func (s Stored) Mtime() time.Time { return s.extras().mtime }
func (s Stored) Atime() time.Time { return s.extras().atime }
func (s Stored) Ctime() time.Time { return s.extras().ctime }

// Xattrs are the user.* extended attributes; the map is shared and must
// not be changed (SetXattr makes a new one).
func (s Stored) Xattrs() map[string][]byte { return s.extras().xattrs }

// ContentType is the object's Content-Type as stored or kept.
func (s Stored) ContentType() string { return s.extras().contentType }

// LinkTarget is a symlink's target once read, else "".
func (s Stored) LinkTarget() string { return s.extras().linkTarget }

// SetMtime, SetAtime, SetCtime, SetContentType and SetLinkTarget change
// one of the extras; given a zero value, an entry without extras stays so.
func (s *Stored) SetMtime(t time.Time) {
	if s.more != nil || !t.IsZero() {
		s.edit().mtime = t
	}
}

func (s *Stored) SetAtime(t time.Time) {
	if s.more != nil || !t.IsZero() {
		s.edit().atime = t
	}
}

func (s *Stored) SetCtime(t time.Time) {
	if s.more != nil || !t.IsZero() {
		s.edit().ctime = t
	}
}

func (s *Stored) SetContentType(t string) {
	if s.more != nil || t != "" {
		s.edit().contentType = t
	}
}

func (s *Stored) SetLinkTarget(target string) {
	if s.more != nil || target != "" {
		s.edit().linkTarget = target
	}
}

func (s *Stored) setXattrs(xattrs map[string][]byte) {
	if s.more != nil || xattrs != nil {
		s.edit().xattrs = xattrs
	}
}

// EntryFromObject turns a HEAD answer into an entry, honouring metadata.
func EntryFromObject(o bucket.Object) Entry {
	e := listedEntry(o)
	e.Meta = true
	md := o.Metadata
	if v, err := strconv.ParseUint(md[MetaMode], 10, 32); err == nil {
		e.Mode = uint32(v)
	}
	var x extras
	x.mtime, _ = parseTime(md[MetaMtime])
	x.atime, _ = parseTime(md[metaAtime])
	x.ctime, _ = parseTime(md[metaCtime])
	uid, uerr := strconv.ParseUint(md[metaUID], 10, 32)
	gid, gerr := strconv.ParseUint(md[metaGID], 10, 32)
	if uerr == nil && gerr == nil {
		e.UID, e.GID, e.Owner = uint32(uid), uint32(gid), true
	}
	if v, err := strconv.ParseUint(md[metaRdev], 10, 32); err == nil {
		e.Rdev = uint32(v)
	}
	x.xattrs = ParseXattrs(md[MetaXattr])
	for k, v := range md {
		// An "xattr" value this codec cannot read is kept as it is.
		if !isOwned(k) || (k == MetaXattr && x.xattrs == nil) {
			if x.foreign == nil {
				x.foreign = make(map[string]string)
			}
			x.foreign[k] = v
		}
	}
	x.contentType = o.ContentType
	if !x.mtime.IsZero() || !x.atime.IsZero() || !x.ctime.IsZero() ||
		x.xattrs != nil || x.foreign != nil || x.contentType != "" {
		e.more = &x
	}
	return e
}

// SavedEntry describes the object just written as o with meta.
func SavedEntry(o bucket.Object, meta bucket.Meta) Entry {
	o.Metadata, o.ContentType = meta.User, meta.ContentType
	return EntryFromObject(o)
}

// KeepLinkTarget is e with the link target known from old, when both are
// the same object version.
func KeepLinkTarget(e, old Entry) Entry {
	if t := old.LinkTarget(); e.ETag == old.ETag && t != e.LinkTarget() {
		e.SetLinkTarget(t)
	}
	return e
}

// listedEntry is what a listing says of an object: its size, ETag and
// time (to the second: HEAD gives whole seconds and a listing
// milliseconds, and the same object must not show two times).
func listedEntry(o bucket.Object) Entry {
	e := Entry{Size: o.Size, ETag: o.ETag}
	e.SetModified(o.LastModified)
	return e
}

func isOwned(key string) bool {
	for _, k := range ownedKeys {
		if k == key {
			return true
		}
	}
	return false
}

// parseTime reads decimal seconds with an optional fraction.
func parseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	sec, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var nsec int64
	if frac != "" {
		f, err := strconv.ParseFloat("0."+frac, 64)
		if err != nil {
			return time.Time{}, false
		}
		nsec = min(int64(math.Round(f*1e9)), 999999999)
	}
	return time.Unix(secs, nsec), true
}

// formatTime writes whole seconds, with nine digits of nanoseconds when
// there are any.
func formatTime(t time.Time) string {
	s := strconv.FormatInt(t.Unix(), 10)
	if ns := t.Nanosecond(); ns != 0 {
		s += "." + strconv.FormatInt(int64(ns)+1e9, 10)[1:]
	}
	return s
}

// ObjectMeta is what to store with the object of an entry at key: the
// metadata of other programs as read (minus what described the old bytes,
// when content is rewritten), then mount-ws's own keys, and the object's
// Content-Type, else one from the name's extension.
func ObjectMeta(e Entry, key string, content bool) bucket.Meta {
	x := e.extras()
	md := maps.Clone(x.foreign)
	if md == nil {
		md = make(map[string]string)
	}
	if content {
		for _, k := range contentKeys {
			delete(md, k)
		}
	}
	for k, t := range map[string]time.Time{MetaMtime: x.mtime, metaAtime: x.atime, metaCtime: x.ctime} {
		if !t.IsZero() {
			md[k] = formatTime(t)
		}
	}
	if e.Mode != 0 {
		md[MetaMode] = strconv.FormatUint(uint64(e.Mode), 10)
	}
	if e.Owner {
		md[metaUID] = strconv.FormatUint(uint64(e.UID), 10)
		md[metaGID] = strconv.FormatUint(uint64(e.GID), 10)
	}
	if e.Rdev != 0 {
		md[metaRdev] = strconv.FormatUint(uint64(e.Rdev), 10)
	}
	if xs := FormatXattrs(x.xattrs); xs != "" {
		md[MetaXattr] = xs
	}
	ct := x.contentType
	if ct == "" && !e.Dir {
		ct = TypeByName(key)
	}
	return bucket.Meta{User: md, ContentType: ct}
}

// TypeByName is the Content-Type for a new object, from its extension (as
// s3fs and rclone do): a CSV served by a presigned URL is then text/csv.
func TypeByName(key string) string {
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Times returns the entry's mtime, atime and ctime: those stored or set,
// else the object's own time (else zero, for the caller to fill).
func (e Entry) Times() (mtime, atime, ctime time.Time) {
	x := e.extras()
	mtime, atime, ctime = x.mtime, x.atime, x.ctime
	own := e.Modified()
	if mtime.IsZero() {
		mtime = own
	}
	if atime.IsZero() {
		atime = own
	}
	if ctime.IsZero() {
		ctime = own
	}
	return mtime, atime, ctime
}

// Touch records a change made now: of the content, or of the metadata
// only (see extras).
func (e *Entry) Touch(content bool) {
	now := time.Now()
	x := e.edit()
	if content {
		// Writes leave atime alone (the mount is noatime).
		if x.atime.IsZero() {
			x.atime = e.Modified()
		}
		// What the object's time will be once saved, or a second less: to
		// the second, so that mtime never steps back at the upload.
		e.SetModified(now)
		x.mtime, x.ctime = time.Time{}, time.Time{}
		return
	}
	// A copy gives the object a new time: keep mtime and atime.
	if x.mtime.IsZero() {
		x.mtime = e.Modified()
	}
	if x.atime.IsZero() {
		x.atime = e.Modified()
	}
	x.ctime = now
}

// KeepKnownMeta carries the metadata of old over to fresh when fresh comes
// from a listing (which has none) and describes the same object version.
func KeepKnownMeta(old, fresh Entry) Entry {
	if fresh.Meta || !old.Meta || old.Dir != fresh.Dir || old.ETag != fresh.ETag {
		return fresh
	}
	fresh.Stored, fresh.Meta = old.Stored, true
	return fresh
}

// Kind is the file type bits of the entry's st_mode.
func (e Entry) Kind() uint32 {
	if e.Dir {
		return syscall.S_IFDIR
	}
	if k := e.Mode & syscall.S_IFMT; k != 0 {
		return k
	}
	return syscall.S_IFREG
}

// IsSymlink reports whether the entry's metadata marks a symbolic link.
func (e Entry) IsSymlink() bool { return e.Kind() == syscall.S_IFLNK }
