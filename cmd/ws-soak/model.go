package main

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"mount-ws/internal/detdata"
)

// segment is a run of detdata content: the first Size bytes of the stream
// of Seed (a shorter size is a prefix of a longer one).
type segment struct {
	Seed uint64 `json:"seed"`
	Size int64  `json:"size"`
}

// content is what a path may hold in the bucket: nothing (Absent), or the
// concatenation of its segments (a write, then appends).
type content struct {
	Absent bool      `json:"absent,omitempty"`
	Segs   []segment `json:"segs,omitempty"`
}

var absent = content{Absent: true}

func (c content) size() int64 {
	var n int64
	for _, s := range c.Segs {
		n += s.Size
	}
	return n
}

func (c content) equal(d content) bool {
	return c.Absent == d.Absent && slices.Equal(c.Segs, d.Segs)
}

func (c content) String() string {
	if c.Absent {
		return "absent"
	}
	var parts []string
	for _, s := range c.Segs {
		parts = append(parts, fmt.Sprintf("%d@%d", s.Size, s.Seed))
	}
	return fmt.Sprintf("%d bytes [%s]", c.size(), strings.Join(parts, " + "))
}

// reader streams the content.
func (c content) reader() io.Reader {
	var rs []io.Reader
	for _, s := range c.Segs {
		rs = append(rs, detdata.New(s.Seed, s.Size))
	}
	return io.MultiReader(rs...)
}

// matches reports whether b is exactly this content.
func (c content) matches(b []byte) bool {
	if c.Absent || int64(len(b)) != c.size() {
		return false
	}
	want := make([]byte, 256<<10)
	rd := c.reader()
	for off := 0; off < len(b); {
		n, _ := io.ReadFull(rd, want)
		if n == 0 || !bytes.Equal(b[off:off+n], want[:n]) {
			return false
		}
		off += n
	}
	return true
}

// appended is c with seg added at the end.
func (c content) appended(seg segment) content {
	return content{Segs: append(slices.Clone(c.Segs), seg)}
}

// pathState is what the model knows of one path.
type pathState struct {
	// Possible lists every content the bucket may hold under the path once
	// mount-ws has unmounted cleanly; one entry when the outcome of every
	// operation on it is known.
	Possible []content
	// Pending is set while the path's last write failed to upload at
	// close or fsync: mount-ws must still upload it (in the background or
	// at unmount).
	Pending bool
}

func (p pathState) mayBeAbsent() bool {
	return slices.ContainsFunc(p.Possible, func(c content) bool { return c.Absent })
}

// definite is the one content the path holds, if its outcome is known.
func (p pathState) definite() (content, bool) {
	if len(p.Possible) != 1 {
		return content{}, false
	}
	return p.Possible[0], true
}

func union(a, b []content) []content {
	out := slices.Clone(a)
	for _, c := range b {
		if !slices.ContainsFunc(out, c.equal) {
			out = append(out, c)
		}
	}
	return out
}

// model is what the bucket must hold under each path the workload writes,
// following README "Writing" → "The contract". Its rules:
//
//   - A write (open with O_TRUNC or O_APPEND, write, maybe fsync, close)
//     whose open succeeded leaves the path holding what was written, also
//     when fsync or close failed: a failed upload is reported and never
//     dropped, and mount-ws retries it in the background and once more at
//     unmount, so it must be in the bucket at the end. If a write(2) fails,
//     what it had written before stays; the rest was never written.
//   - A write whose open failed changes nothing.
//   - A delete that succeeded leaves the path absent; one that failed with
//     ENOENT changes nothing; one that failed otherwise may or may not
//     have reached S3, so absence joins the possibilities.
//   - A rename that succeeded moves the source's possibilities to the
//     target and leaves the source absent. One that failed leaves the
//     source as it was (README: originals are deleted only once every copy
//     succeeded), and the target may hold the source's content besides its
//     own (a copy may have been made).
//
// Every path is written by one worker only, so the order of operations on
// a path is the order they were made in. Methods are safe for concurrent
// use.
type model struct {
	mu    sync.Mutex
	paths map[string]pathState // guarded by mu
}

func newModel() *model { return &model{paths: make(map[string]pathState)} }

func (m *model) get(path string) pathState {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.paths[path]; ok {
		return st
	}
	return pathState{Possible: []content{absent}}
}

func (m *model) set(path string, st pathState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paths[path] = st
}

// wrote records a write whose open succeeded: the path holds c. uploadFailed
// says fsync or close failed.
func (m *model) wrote(path string, c content, uploadFailed bool) {
	m.set(path, pathState{Possible: []content{c}, Pending: uploadFailed})
}

// deleted records an unlink: ok if it succeeded, notFound if it failed with
// ENOENT.
func (m *model) deleted(path string, ok, notFound bool) {
	st := m.get(path)
	switch {
	case ok:
		st = pathState{Possible: []content{absent}}
	case notFound:
		return
	default:
		st.Possible = union(st.Possible, []content{absent})
	}
	m.set(path, st)
}

// renamed records a rename of from over to.
func (m *model) renamed(from, to string, ok, notFound bool) {
	src, dst := m.get(from), m.get(to)
	switch {
	case ok:
		m.set(to, src)
		m.set(from, pathState{Possible: []content{absent}})
	case notFound:
	default:
		dst.Possible = union(dst.Possible, src.Possible)
		dst.Pending = dst.Pending || src.Pending
		m.set(to, dst)
	}
}

// snapshot returns a copy of every path's state.
func (m *model) snapshot() map[string]pathState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.paths)
}
