package vfs

import (
	"strings"

	"mount-ws/bucket"
)

// A lookup of a name that no listing answers asks S3 for one page of the
// keys that begin with the name's key (bucket.ListFrom), and the page is
// read here. The one request says whether the name is an object and
// whether anything lies under name/ (a directory, which wins), and it
// often holds more: the entries of the directories below, which answer
// the lookups of a path's next components without a request of their own
// (cat a/b/c on a fresh mount), as far as the page reaches.

// Probe is what a page of the keys that begin with a child's key says.
type Probe struct {
	// File is the object named key, if there is one.
	File *bucket.Object
	// Dir: keys lie under key/; Marker: key/ itself is an object.
	Dir, Marker bool
	// Sure: the page reached past every key under key/, so Dir and
	// Marker are the truth. When it did not (a page filled by keys
	// such as key.txt or key-2 that sort before key/), the caller asks
	// about key/ on its own.
	Sure bool
	// Learned is what the page shows for certain of other directories'
	// entries, by directory key (see LearnFrom).
	Learned map[string]map[string]Entry
}

// ReadProbe reads a page of the keys beginning with key, the key of name
// in the directory dirKey (see bucket.KeysFrom).
func ReadProbe(dirKey, name string, page bucket.KeysFrom, skip SkipFunc) Probe {
	key := ChildKey(dirKey, name)
	pr := Probe{Sure: !page.Truncated || page.Last >= key+"/"}
	for i := range page.Objects {
		o := &page.Objects[i]
		switch {
		case o.Key == key:
			pr.File = o
		case o.Key == key+"/":
			pr.Dir, pr.Marker = true, true
		case strings.HasPrefix(o.Key, key+"/"):
			pr.Dir = true
		}
	}
	pr.Learned = LearnFrom(dirKey, page, skip)
	return pr
}

// LearnFrom returns what a page of keys, all under the directory dirKey,
// shows for certain of the entries of dirKey and of the directories below
// it, by directory key: a name with keys below it is a directory (its
// metadata still to be read if its marker was listed: Meta false); a key
// is a file if the page reached past every key that could make it a
// directory instead. Only names seen are learned: a name not seen may
// still exist past the page.
func LearnFrom(dirKey string, page bucket.KeysFrom, skip SkipFunc) map[string]map[string]Entry {
	learned := make(map[string]map[string]Entry)
	add := func(dir, name string, e Entry) {
		m := learned[dir]
		if m == nil {
			m = make(map[string]Entry)
			learned[dir] = m
		}
		if old, ok := m[name]; ok && old.Dir {
			if !e.Dir {
				return // a directory of the same name hides the file
			}
			if !old.Meta {
				e.Meta = false // its marker was seen
			}
		}
		m[name] = e
	}
	prefix := ListingPrefix(dirKey)
	for _, o := range page.Objects {
		rel, ok := strings.CutPrefix(o.Key, prefix)
		if !ok || rel == "" {
			continue
		}
		dir := dirKey
		for {
			name, rest, deeper := strings.Cut(rel, "/")
			if why := NameProblem(name); why != "" {
				skip(o.Key, why)
				break
			}
			if deeper {
				// A marker (rest "") is seen before any key under it.
				add(dir, name, Entry{Dir: true, Meta: rest != ""})
				if rest == "" {
					break
				}
				dir, rel = ChildKey(dir, name), rest
				continue
			}
			// A file, unless keys under name/ lie past the page.
			if !page.Truncated || page.Last >= o.Key+"0" {
				add(dir, name, listedEntry(o))
			}
			break
		}
	}
	return learned
}

// Seed is the start of a directory's listing read from a lookup's page of
// keys (bucket.ListFrom) that reached into the directory: the listing
// goes on from there (bucket.ListAfter) instead of asking S3 again for
// what the page showed, or needs no request at all when the page held the
// whole directory.
type Seed struct {
	// Page holds what the page showed of the directory, as a page of its
	// listing (objects and sub-prefixes); Next is "" when it is all.
	Page bucket.Page
	// After is the last key the page covered: the listing goes on after
	// it. "" when the page held the whole directory.
	After string
}

// SeedsFrom returns, by directory key, the seeds a page of the keys that
// begin with key gives: those of key itself and of every directory below
// it, whose keys the page covered from their first.
func SeedsFrom(key string, page bucket.KeysFrom) map[string]Seed {
	seeds := make(map[string]Seed)
	prefixes := make(map[string]bool) // "dir\x00sub/" seen
	for _, o := range page.Objects {
		k := o.Key
		// Every directory D with D/ a prefix of k at least as long as
		// key/ (shorter ones begin before the page).
		for i := len(key); i < len(k); i++ {
			if k[i] != '/' {
				continue
			}
			dir, rest := k[:i], k[i+1:]
			s := seeds[dir]
			if j := strings.IndexByte(rest, '/'); j >= 0 {
				sub := k[:i+1+j+1]
				if !prefixes[dir+"\x00"+sub] {
					prefixes[dir+"\x00"+sub] = true
					s.Page.Prefixes = append(s.Page.Prefixes, sub)
				}
			} else {
				s.Page.Objects = append(s.Page.Objects, o)
			}
			seeds[dir] = s
		}
	}
	for dir, s := range seeds {
		if page.Truncated && page.Last < dir+"0" {
			// The page stopped inside the directory.
			s.After, s.Page.Next = page.Last, "more"
			seeds[dir] = s
		}
	}
	return seeds
}
