package vfs

import (
	"slices"
	"strings"
)

// listing is a directory's last listing. Its names sit in one array sorted
// by name, 104 bytes a name with its entry at any size: a Go map holds
// twice that for a million names, its tables half empty after they grow.
// Names added through the mount since the listing was read go in a small
// map beside it, and names removed in another. A nil listing is none: it
// finds nothing and holds nothing.
type listing struct {
	sorted []listed
	added  map[string]Entry    // names not in sorted
	gone   map[string]struct{} // names of sorted removed since
}

type listed struct {
	name string
	e    Entry
}

// newListing makes a listing of entries; it keeps their names, not the map.
func newListing(entries map[string]Entry) *listing {
	l := &listing{sorted: make([]listed, 0, len(entries))}
	for name, e := range entries {
		l.sorted = append(l.sorted, listed{name, e})
	}
	slices.SortFunc(l.sorted, func(a, b listed) int { return strings.Compare(a.name, b.name) })
	return l
}

// find returns where name is, or would be, in sorted.
func (l *listing) find(name string) (int, bool) {
	return slices.BinarySearchFunc(l.sorted, name, func(x listed, name string) int { return strings.Compare(x.name, name) })
}

func (l *listing) get(name string) (Entry, bool) {
	if l == nil {
		return Entry{}, false
	}
	if i, ok := l.find(name); ok {
		if _, gone := l.gone[name]; gone {
			return Entry{}, false
		}
		return l.sorted[i].e, true
	}
	e, ok := l.added[name]
	return e, ok
}

func (l *listing) set(name string, e Entry) {
	if l == nil {
		return
	}
	if i, ok := l.find(name); ok {
		l.sorted[i].e = e
		delete(l.gone, name)
		return
	}
	if l.added == nil {
		l.added = make(map[string]Entry)
	}
	l.added[name] = e
}

func (l *listing) remove(name string) {
	if l == nil {
		return
	}
	if _, ok := l.find(name); !ok {
		delete(l.added, name)
		return
	}
	if l.gone == nil {
		l.gone = make(map[string]struct{})
	}
	l.gone[name] = struct{}{}
}

func (l *listing) len() int {
	if l == nil {
		return 0
	}
	return len(l.sorted) - len(l.gone) + len(l.added)
}

// each calls fn with every name and its entry, in no order.
func (l *listing) each(fn func(name string, e Entry)) {
	if l == nil {
		return
	}
	for _, x := range l.sorted {
		if _, gone := l.gone[x.name]; !gone {
			fn(x.name, x.e)
		}
	}
	for name, e := range l.added {
		fn(name, e)
	}
}
