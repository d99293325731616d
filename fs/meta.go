package fs

import (
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mount-ws/bucket"
)

// Object user metadata, with the keys s3fs uses, so buckets written by
// either tool look the same through both: mode is the decimal st_mode
// (file type bits included), mtime decimal Unix seconds (s3fs writes whole
// seconds; a fraction is accepted), uid and gid decimal ids.
const (
	metaMode  = "mode"
	metaMtime = "mtime"
	metaUID   = "uid"
	metaGID   = "gid"
)

// entryFromObject turns a HEAD answer into an entry, honouring metadata.
func entryFromObject(o bucket.Object) entry {
	e := entry{size: o.Size, mtime: o.LastModified, etag: o.ETag, meta: true}
	md := o.Metadata
	if v, err := strconv.ParseUint(md[metaMode], 10, 32); err == nil {
		e.mode = uint32(v)
	}
	if t, ok := parseMtime(md[metaMtime]); ok {
		e.mtime, e.mtimeSet = t, true
	}
	uid, uerr := strconv.ParseUint(md[metaUID], 10, 32)
	gid, gerr := strconv.ParseUint(md[metaGID], 10, 32)
	if uerr == nil && gerr == nil {
		e.uid, e.gid, e.owner = uint32(uid), uint32(gid), true
	}
	return e
}

func parseMtime(s string) (time.Time, bool) {
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
		nsec = int64(math.Round(f * 1e9))
	}
	return time.Unix(secs, nsec), true
}

// metadataOf is the user metadata stored with an entry's object. The
// mtime is stored only when it was set explicitly: after a plain write the
// object's own time is the file's mtime, and is exact.
func metadataOf(e entry) map[string]string {
	md := map[string]string{}
	if e.mtimeSet {
		md[metaMtime] = formatMtime(e.mtime)
	}
	if e.mode != 0 {
		md[metaMode] = strconv.FormatUint(uint64(e.mode), 10)
	}
	if e.owner {
		md[metaUID] = strconv.FormatUint(uint64(e.uid), 10)
		md[metaGID] = strconv.FormatUint(uint64(e.gid), 10)
	}
	return md
}

// formatMtime writes whole seconds, as s3fs does, with the nanoseconds as
// a fraction when there are any (s3fs ignores the fraction).
func formatMtime(t time.Time) string {
	s := strconv.FormatInt(t.Unix(), 10)
	if ns := t.Nanosecond(); ns != 0 {
		s += "." + strings.TrimRight(strconv.FormatInt(int64(ns)+1e9, 10)[1:], "0")
	}
	return s
}

// keepKnownMeta carries the metadata of old over to fresh when fresh comes
// from a listing (which has none) and describes the same object version.
func keepKnownMeta(old, fresh entry) entry {
	if fresh.meta || !old.meta || old.dir != fresh.dir || old.etag != fresh.etag {
		return fresh
	}
	fresh.mode, fresh.uid, fresh.gid, fresh.owner, fresh.meta = old.mode, old.uid, old.gid, old.owner, true
	if old.mtimeSet {
		fresh.mtime, fresh.mtimeSet = old.mtime, true
	}
	return fresh
}

// isSymlink reports whether the entry's metadata marks a symbolic link.
func (e entry) isSymlink() bool { return !e.dir && e.mode&syscall.S_IFMT == syscall.S_IFLNK }
