package fs

import (
	"log/slog"
	"os"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"

	"mount-ws/datacache"
	"mount-ws/vfs"
)

// Passthrough. On a read-only mount with a data cache, a large object's
// blocks are kept in one local file, at their place in the object
// (datacache.Version); once all are there, an open hands the kernel that
// file: reads then go from the kernel to the local disk
// without a round trip through this process (FUSE passthrough: Linux 6.9
// or later, and root; go-fuse falls back to ordinary reads when the
// kernel refuses).
//
// The kernel binds one passthrough file to an inode while any open of it
// is passed through, and fails with EIO every other open of the inode
// that is not passed through to that same file; and it passes nothing
// through while the inode has ordinary opens. Hence read-only mounts
// only: a writer beside a passthrough reader could not be opened. An
// open finds the file's other opens in the counts here, which the kernel
// lowers before it tells us of a release, so they are never below its
// own: an open passed through is one the kernel accepts.

// openModes counts a file's handles passed through; its other handles
// are ordinary ones.
type openModes struct {
	passthrough int
	etag        string   // the version they read
	whole       *os.File // its copy, open until the last of them is released
}

// passedThrough holds the openModes of the files with handles passed
// through, few and only on read-only mounts with a data cache: kept here,
// not in every file's activity. Its lock is taken for a whole decision to
// pass an open through (or not), and a file's own lock under it.
type passedThrough struct {
	mu     sync.Mutex
	byFile map[*vfs.File]*openModes // guarded by mu
}

// setLocked records m for s; nil forgets s. p.mu must be held.
func (p *passedThrough) setLocked(s *vfs.File, m *openModes) {
	if m == nil {
		delete(p.byFile, s)
		return
	}
	if p.byFile == nil {
		p.byFile = make(map[*vfs.File]*openModes)
	}
	p.byFile[s] = m
}

// passthroughHandle is a handle whose reads the kernel serves from a whole
// copy in the data cache. Only this type offers go-fuse a file: go-fuse
// gives the later opens of a file the passthrough file it registered for
// the first whenever their handle offers one.
type passthroughHandle struct {
	*handle
	whole *os.File // openModes.whole
}

var _ fusefs.FilePassthroughFder = (*passthroughHandle)(nil)

// PassthroughFd implements fusefs.FilePassthroughFder. go-fuse asks while
// the open is answered, when the file is open.
func (h *passthroughHandle) PassthroughFd() (int, bool) { return int(h.whole.Fd()), true }

// passThrough returns the handle to give go-fuse for the new handle h of
// the file, opened for reading on a read-only mount with nothing staged,
// which reads version e and is counted in its file's handles: a
// passthroughHandle when the data cache has a whole copy of e and no
// ordinary open stands in the way, or when the file's passthrough opens
// read e already. EBUSY when they read another version (it changed since
// they opened): the kernel would fail the open anyway, and says less.
func (n *file) passThrough(h *handle, e vfs.Entry) (fusefs.FileHandle, syscall.Errno) {
	if !n.fs.passthrough.Load() || n.fs.opts.DataCache == nil || e.ETag == "" || e.Size < datacache.WholeMin {
		// Where the kernel would not take the file, counting the open as
		// passed through would only answer EBUSY for nothing, and check a
		// copy found at mount time whole for nothing.
		return h, 0
	}
	key := n.key()
	p := &n.fs.passed
	p.mu.Lock()
	m := p.byFile[n.state]
	p.mu.Unlock()
	var whole *os.File
	if m == nil {
		whole = n.fs.wholeCopy(key, e.ETag, e.Size) // reads the disk: not under the lock
	}
	p.mu.Lock()
	m = p.byFile[n.state]
	switch {
	case m != nil && m.etag == e.ETag:
	case m != nil:
		p.mu.Unlock()
		if n.fs.errs.firstTime("passthrough version\x00" + key) {
			n.fs.log.Warn("a file changed in the bucket while open for passthrough reading: it opens again once those readers close", slog.String("path", key))
		}
		closeIfOpen(whole)
		return nil, syscall.EBUSY
	case whole != nil && n.state.Handles() == 1:
		m = &openModes{etag: e.ETag, whole: whole}
		p.setLocked(n.state, m)
		whole = nil
	default:
		p.mu.Unlock()
		closeIfOpen(whole)
		return h, 0
	}
	m.passthrough++
	h.passedThrough = true
	p.mu.Unlock()
	closeIfOpen(whole) // another open began passing it through meanwhile
	n.fs.counts.passthroughOpens.Add(1)
	return &passthroughHandle{handle: h, whole: m.whole}, 0
}

func closeIfOpen(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// closeMode uncounts h at its release.
func (n *file) closeMode(h *handle) {
	if !h.passedThrough {
		return
	}
	p := &n.fs.passed
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.byFile[n.state]
	if m.passthrough--; m.passthrough == 0 {
		m.whole.Close() // the kernel holds its own reference while it reads
		p.setLocked(n.state, nil)
	}
}

// wholeCopy opens the whole copy of version etag of key, size bytes, in
// the data cache; nil if there is none.
func (f *FS) wholeCopy(key, etag string, size int64) *os.File {
	if key == "" {
		return nil
	}
	whole, ok := f.opts.DataCache.Version(key, etag, size).Whole()
	if !ok {
		return nil
	}
	return whole
}
