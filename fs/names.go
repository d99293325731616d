package fs

import (
	"strings"
	"time"

	"mount-ws/bucket"
)

// maxNameLen is the longest file name Linux accepts (NAME_MAX).
const maxNameLen = 255

// entry is what a directory knows of one child.
type entry struct {
	dir  bool
	size int64
	etag string // "" for a file not uploaded yet
	// modified is the object's own time (Last-Modified), to the second.
	modified time.Time
	// meta is false when only a listing was seen, which carries no
	// metadata: stored then holds nothing read from S3.
	meta bool
	stored
	linkTarget string // for symlinks, once read
}

// nameProblem says why name cannot be a file name, or "" if it can.
func nameProblem(name string) string {
	switch {
	case name == "":
		return "empty path segment (\"//\" in the key)"
	case name == "." || name == "..":
		return "\".\" or \"..\" segment"
	case len(name) > maxNameLen:
		return "name longer than 255 bytes"
	case strings.ContainsAny(name, "/\x00"):
		return "slash or NUL in name"
	}
	return ""
}

// childKey joins a directory key ("" or "a/b") and a child name.
func childKey(dirKey, name string) string {
	if dirKey == "" {
		return name
	}
	return dirKey + "/" + name
}

// listingPrefix is the S3 prefix listing the children of dirKey.
func listingPrefix(dirKey string) string {
	if dirKey == "" {
		return ""
	}
	return dirKey + "/"
}

// skipFunc is told about each key that cannot be shown, and why.
type skipFunc func(key, reason string)

// addListing merges one page of a delimited listing of prefix into entries.
// A sub-prefix makes a directory; an object makes a file unless a directory
// of the same name exists (then the file is hidden); the directory's own
// marker object is not a child. Names that cannot be file names are skipped.
func addListing(entries map[string]entry, prefix string, page bucket.Page, skip skipFunc) {
	for _, p := range page.Prefixes {
		name := strings.TrimSuffix(strings.TrimPrefix(p, prefix), "/")
		if why := nameProblem(name); why != "" {
			skip(p, why)
			continue
		}
		if old, ok := entries[name]; ok && !old.dir {
			skip(prefix+name, "a directory of the same name hides this file")
		}
		entries[name] = entry{dir: true}
	}
	for _, o := range page.Objects {
		name := strings.TrimPrefix(o.Key, prefix)
		if name == "" {
			continue // the directory's own marker
		}
		if why := nameProblem(name); why != "" {
			skip(o.Key, why)
			continue
		}
		if old, ok := entries[name]; ok && old.dir {
			skip(o.Key, "a directory of the same name hides this file")
			continue
		}
		entries[name] = entry{size: o.Size, modified: objectTime(o.LastModified), etag: o.ETag}
	}
}
