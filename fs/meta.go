package fs

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
	metaMode  = "mode"
	metaMtime = "mtime"
	metaAtime = "atime"
	metaCtime = "ctime"
	metaUID   = "uid"
	metaGID   = "gid"
	metaRdev  = "rdev"
)

// ownedKeys are the metadata keys mount-ws reads and writes. Every other
// key belongs to another program and is kept as it is.
var ownedKeys = []string{metaMode, metaMtime, metaAtime, metaCtime, metaUID, metaGID, metaRdev, metaXattr}

// contentKeys are other programs' metadata that describe an object's bytes
// (checksums, and s3cmd's record of size, times and md5): a rewrite of the
// content drops them, since they would no longer match.
var contentKeys = []string{"md5chksum", "md5", "md5sum", "sha1", "sha256", "crc32c", "s3cmd-attrs", metaSave}

// metaSave names one partial save of an object by this mount (a random
// token): when the answer to a save is lost, it tells whether the object
// now in the bucket is that save (see file.ownSave).
const metaSave = "mount-ws-save"

// stored is what an object's metadata says beyond what a listing gives.
type stored struct {
	mode     uint32 // full st_mode; 0 for "the default"
	uid, gid uint32
	owner    bool   // uid and gid are stored
	rdev     uint32 // device number of a device node
	// Times stored or set through this mount; zero when neither, and
	// then the object's own time stands in (see entry.times). A change of
	// the content clears mtime and ctime: the new object's time is both.
	// A change of metadata only is a copy, which gives the object a new
	// time: mtime is pinned to the old one, and ctime set.
	mtime, atime, ctime time.Time
	xattrs              map[string][]byte // user.* extended attributes (xattr.go)
	// foreign is the user metadata of other programs, kept on every
	// change; contentType the object's Content-Type, likewise kept.
	foreign     map[string]string
	contentType string
}

// entryFromObject turns a HEAD answer into an entry, honouring metadata.
func entryFromObject(o bucket.Object) entry {
	e := entry{size: o.Size, modified: objectTime(o.LastModified), etag: o.ETag, meta: true}
	md := o.Metadata
	if v, err := strconv.ParseUint(md[metaMode], 10, 32); err == nil {
		e.mode = uint32(v)
	}
	e.mtime, _ = parseTime(md[metaMtime])
	e.atime, _ = parseTime(md[metaAtime])
	e.ctime, _ = parseTime(md[metaCtime])
	uid, uerr := strconv.ParseUint(md[metaUID], 10, 32)
	gid, gerr := strconv.ParseUint(md[metaGID], 10, 32)
	if uerr == nil && gerr == nil {
		e.uid, e.gid, e.owner = uint32(uid), uint32(gid), true
	}
	if v, err := strconv.ParseUint(md[metaRdev], 10, 32); err == nil {
		e.rdev = uint32(v)
	}
	e.xattrs = parseXattrs(md[metaXattr])
	for k, v := range md {
		// An "xattr" value this codec cannot read is kept as it is.
		if !isOwned(k) || (k == metaXattr && e.xattrs == nil) {
			if e.foreign == nil {
				e.foreign = make(map[string]string)
			}
			e.foreign[k] = v
		}
	}
	e.contentType = o.ContentType
	return e
}

// savedEntry describes the object just written as o with meta.
func savedEntry(o bucket.Object, meta bucket.Meta) entry {
	o.Metadata, o.ContentType = meta.User, meta.ContentType
	return entryFromObject(o)
}

// keepLinkTarget is e with the link target known from old, when both are
// the same object version.
func keepLinkTarget(e, old entry) entry {
	if e.etag == old.etag {
		e.linkTarget = old.linkTarget
	}
	return e
}

// objectTime is an object's Last-Modified to the second: HEAD gives whole
// seconds and a listing milliseconds, and the same object must not show
// two times.
func objectTime(t time.Time) time.Time { return t.Truncate(time.Second) }

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

// objectMeta is what to store with the object of an entry at key: the
// metadata of other programs as read (minus what described the old bytes,
// when content is rewritten), then mount-ws's own keys, and the object's
// Content-Type, else one from the name's extension.
func objectMeta(e entry, key string, content bool) bucket.Meta {
	md := maps.Clone(e.foreign)
	if md == nil {
		md = make(map[string]string)
	}
	if content {
		for _, k := range contentKeys {
			delete(md, k)
		}
	}
	for k, t := range map[string]time.Time{metaMtime: e.mtime, metaAtime: e.atime, metaCtime: e.ctime} {
		if !t.IsZero() {
			md[k] = formatTime(t)
		}
	}
	if e.mode != 0 {
		md[metaMode] = strconv.FormatUint(uint64(e.mode), 10)
	}
	if e.owner {
		md[metaUID] = strconv.FormatUint(uint64(e.uid), 10)
		md[metaGID] = strconv.FormatUint(uint64(e.gid), 10)
	}
	if e.rdev != 0 {
		md[metaRdev] = strconv.FormatUint(uint64(e.rdev), 10)
	}
	if x := formatXattrs(e.xattrs); x != "" {
		md[metaXattr] = x
	}
	ct := e.contentType
	if ct == "" && !e.dir {
		ct = typeByName(key)
	}
	return bucket.Meta{User: md, ContentType: ct}
}

// typeByName is the Content-Type for a new object, from its extension (as
// s3fs and rclone do): a CSV served by a presigned URL is then text/csv.
func typeByName(key string) string {
	if t := mime.TypeByExtension(path.Ext(key)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// times returns the entry's mtime, atime and ctime: those stored or set,
// else the object's own time (else zero, for the caller to fill).
func (e entry) times() (mtime, atime, ctime time.Time) {
	mtime, atime, ctime = e.mtime, e.atime, e.ctime
	if mtime.IsZero() {
		mtime = e.modified
	}
	if atime.IsZero() {
		atime = e.modified
	}
	if ctime.IsZero() {
		ctime = e.modified
	}
	return mtime, atime, ctime
}

// touch records a change made now: of the content, or of the metadata
// only (see stored).
func (e *entry) touch(content bool) {
	now := time.Now()
	if content {
		// Writes leave atime alone (the mount is noatime).
		if e.atime.IsZero() && !e.modified.IsZero() {
			e.atime = e.modified
		}
		// What the object's time will be once saved, or a second less: to
		// the second, so that mtime never steps back at the upload.
		e.modified, e.mtime, e.ctime = now.Truncate(time.Second), time.Time{}, time.Time{}
		return
	}
	// A copy gives the object a new time: keep mtime and atime.
	if e.mtime.IsZero() {
		e.mtime = e.modified
	}
	if e.atime.IsZero() {
		e.atime = e.modified
	}
	e.ctime = now
}

// keepKnownMeta carries the metadata of old over to fresh when fresh comes
// from a listing (which has none) and describes the same object version.
func keepKnownMeta(old, fresh entry) entry {
	if fresh.meta || !old.meta || old.dir != fresh.dir || old.etag != fresh.etag {
		return fresh
	}
	fresh.stored, fresh.meta, fresh.linkTarget = old.stored, true, old.linkTarget
	return fresh
}

// kind is the file type bits of the entry's st_mode.
func (e entry) kind() uint32 {
	if e.dir {
		return syscall.S_IFDIR
	}
	if k := e.mode & syscall.S_IFMT; k != 0 {
		return k
	}
	return syscall.S_IFREG
}

// isSymlink reports whether the entry's metadata marks a symbolic link.
func (e entry) isSymlink() bool { return e.kind() == syscall.S_IFLNK }
