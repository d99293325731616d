package vfs

import (
	"strings"
	"time"

	"mount-ws/bucket"
)

// MaxNameLen is the longest file name Linux accepts (NAME_MAX).
const MaxNameLen = 255

// Entry is what a directory knows of one child.
type Entry struct {
	Size int64
	ETag string // "" for a file not uploaded yet
	// modified is the object's own time (Last-Modified) in whole seconds
	// since the Unix epoch, 0 when unknown: a number, not a time.Time,
	// 16 bytes less for every name a listing holds (see Modified).
	modified int64
	Stored
	Dir bool
	// Meta is false when only a listing was seen, which carries no
	// metadata: Stored then holds nothing read from S3.
	Meta bool
}

// Modified is the object's own time (Last-Modified), to the second; zero
// when unknown.
func (e Entry) Modified() time.Time {
	if e.modified == 0 {
		return time.Time{}
	}
	return time.Unix(e.modified, 0)
}

// SetModified sets the object's own time, to the second.
func (e *Entry) SetModified(t time.Time) {
	if t.IsZero() {
		e.modified = 0
		return
	}
	e.modified = t.Unix()
}

// NameProblem says why name cannot be a file name, or "" if it can.
func NameProblem(name string) string {
	switch {
	case name == "":
		return "empty path segment (\"//\" in the key)"
	case name == "." || name == "..":
		return "\".\" or \"..\" segment"
	case len(name) > MaxNameLen:
		return "name longer than 255 bytes"
	case strings.ContainsAny(name, "/\x00"):
		return "slash or NUL in name"
	}
	return ""
}

// ChildKey joins a directory key ("" or "a/b") and a child name.
func ChildKey(dirKey, name string) string {
	if dirKey == "" {
		return name
	}
	return dirKey + "/" + name
}

// SplitKey is ChildKey's inverse: the directory key and the name of key.
func SplitKey(key string) (dirKey, name string) {
	i := strings.LastIndexByte(key, '/')
	if i < 0 {
		return "", key
	}
	return key[:i], key[i+1:]
}

// ListingPrefix is the S3 prefix listing the children of dirKey.
func ListingPrefix(dirKey string) string {
	if dirKey == "" {
		return ""
	}
	return dirKey + "/"
}

// SkipFunc is told about each key that cannot be shown, and why.
type SkipFunc func(key, reason string)

// AddListing merges one page of a delimited listing of prefix into entries.
// A sub-prefix makes a directory; an object makes a file unless a directory
// of the same name exists (then the file is hidden); the directory's own
// marker object is not a child. Names that cannot be file names are skipped.
func AddListing(entries map[string]Entry, prefix string, page bucket.Page, skip SkipFunc) {
	for _, p := range page.Prefixes {
		name := strings.TrimSuffix(strings.TrimPrefix(p, prefix), "/")
		if why := NameProblem(name); why != "" {
			skip(p, why)
			continue
		}
		if old, ok := entries[name]; ok && !old.Dir {
			skip(prefix+name, "a directory of the same name hides this file")
		}
		entries[strings.Clone(name)] = Entry{Dir: true}
	}
	for _, o := range page.Objects {
		name := strings.TrimPrefix(o.Key, prefix)
		if name == "" {
			continue // the directory's own marker
		}
		if why := NameProblem(name); why != "" {
			skip(o.Key, why)
			continue
		}
		if old, ok := entries[name]; ok && old.Dir {
			skip(o.Key, "a directory of the same name hides this file")
			continue
		}
		// A copy of the name, not a slice of the key: the key's prefix
		// (the workspace's, the directory's) would stay in memory with it.
		entries[strings.Clone(name)] = listedEntry(o)
	}
}
