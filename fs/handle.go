package fs

import (
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mount-ws/bucket"
	"mount-ws/vfs"
)

// handle is an open file. Reads come from the staging copy while the file
// has one (so every handle sees one file), else from S3 through a
// read-ahead pinned to the object version seen at open.
type handle struct {
	n          *file
	appendOnly bool // O_APPEND: every write goes to the end
	// writer: opened for writing, or written to, and not closed since.
	// Setattr waits for the close of such a handle.
	writer        vfs.Writer
	passedThrough bool // the kernel reads it from the data cache (passthrough.go); set at open

	mu   sync.Mutex
	attr vfs.Entry      // the version read; guarded by mu
	ra   *vfs.ReadAhead // created on the first read from S3; guarded by mu
	// unchecked: attr comes from a listing or lookup, not from S3 at open
	// (see file.Open); served: data was returned. An unchecked handle that
	// served nothing yet moves to the object's new version when its first
	// GET finds the ETag changed. Both guarded by mu.
	unchecked, served bool
}

var (
	_ fusefs.FileReader   = (*handle)(nil)
	_ fusefs.FileWriter   = (*handle)(nil)
	_ fusefs.FileFlusher  = (*handle)(nil)
	_ fusefs.FileFsyncer  = (*handle)(nil)
	_ fusefs.FileReleaser = (*handle)(nil)
)

// fetcher reads ranges of the object, pinned to one ETag.
func (h *handle) fetcher(etag string) vfs.FetchFunc {
	return func(ctx context.Context, p []byte, off int64) (int, error) {
		key := h.n.key()
		if key == "" {
			return 0, syscall.ESTALE // unlinked: its object is gone
		}
		if n, ok := h.n.fs.bodies.Read(key, etag, p, off); ok {
			switch {
			case n == len(p):
				return n, nil
			case n == 0:
				return 0, io.EOF
			}
			return n, io.ErrUnexpectedEOF
		}
		n, err := vfs.GetFull(ctx, h.n.fs.b, key, p, off, etag)
		if errors.Is(err, iofs.ErrNotExist) {
			return n, syscall.ESTALE // deleted behind the mount
		}
		return n, err
	}
}

// reader is the handle's read-ahead, made on first use.
func (h *handle) reader() *vfs.ReadAhead {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ra == nil {
		fetch := h.fetcher(h.attr.ETag)
		if h.n.fs.opts.DataCache != nil && h.attr.ETag != "" {
			fetch = h.n.fs.cachedFetch(h.n.key, h.attr.ETag, h.attr.Size, fetch)
		}
		h.ra = vfs.NewReadAhead(fetch, h.attr.Size, h.n.fs.budget, &h.n.fs.counts.readAhead)
	}
	return h.ra
}

// readS3 reads n bytes at off from the object. An unchecked handle whose
// first GET finds the object replaced moves to the new version and reads
// again: no data of the old one was returned, so the open may as well
// have come after the change. Once data was served, a change is ESTALE.
func (h *handle) readS3(ctx context.Context, off int64, n int) (*vfs.Span, error) {
	ra := h.reader()
	s, err := ra.Read(ctx, off, n)
	if err != nil && s.Len() == 0 && h.moveToCurrent(ctx, ra, err) {
		s.Release()
		s, err = h.reader().Read(ctx, off, n)
	}
	if s.Len() > 0 {
		h.mu.Lock()
		h.served = true
		h.mu.Unlock()
	}
	return s, err
}

// moveToCurrent points an unchecked handle that served nothing at the
// object's current version when err says the object changed; it reports
// whether the read should be tried again (also when another read of the
// handle did it meanwhile, closing the reader this one used).
func (h *handle) moveToCurrent(ctx context.Context, failed *vfs.ReadAhead, err error) bool {
	h.mu.Lock()
	if h.ra != failed {
		h.mu.Unlock()
		return true
	}
	ok := h.unchecked && !h.served && errors.Is(err, bucket.ErrPrecondition)
	h.mu.Unlock()
	if !ok {
		return false
	}
	e, herr := h.n.fs.files.Revalidate(ctx, h.n.state)
	if herr != nil || h.n.wrongKind(e) {
		return false
	}
	h.mu.Lock()
	swapped := h.ra == failed
	if swapped {
		h.attr, h.ra, h.unchecked = e, nil, false
	}
	h.mu.Unlock()
	if swapped {
		h.n.state.SetCacheETag(e.ETag)
		failed.Close() // waits for its fetches: not under the handle's lock
	}
	return true
}

// Read implements fusefs.FileReader.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.mu.Lock()
	etag := h.attr.ETag
	h.mu.Unlock()
	n, staged, err := h.n.fs.files.ReadStaged(ctx, h.n.state, dest, off, etag)
	if staged {
		if readFailed(err, n) {
			return nil, h.n.fs.toErrno("read", h.n.key(), err)
		}
		return fuse.ReadResultData(dest[:n]), 0
	}
	s, err := h.readS3(ctx, off, len(dest))
	if readFailed(err, s.Len()) {
		s.Release()
		return nil, h.n.fs.toErrno("read", h.n.key(), err)
	}
	if s.Len() == 0 {
		s.Release() // go-fuse calls Done only for a result with data
		return fuse.ReadResultData(nil), 0
	}
	return spanResult{s}, 0
}

// readFailed reports whether a read that got n bytes and err failed; a
// short read at the end of the file did not.
func readFailed(err error, n int) bool {
	return err != nil && !errors.Is(err, io.EOF) && !(errors.Is(err, io.ErrUnexpectedEOF) && n > 0)
}

// spanResult hands a read's fetched buffers to go-fuse without copying
// them: go-fuse writes the parts to the kernel with writev when a result
// has a Slices method, and calls Done after, when they may be reused.
type spanResult struct{ s *vfs.Span }

// slicer is the interface go-fuse looks for to write a result's parts as
// they are (unexported there).
type slicer interface {
	Slices() ([][]byte, fuse.Status)
}

var _ slicer = spanResult{}

func (r spanResult) Size() int { return r.s.Len() }

func (r spanResult) Bytes(buf []byte) ([]byte, fuse.Status) {
	if parts := r.s.Parts(); len(parts) == 1 {
		return parts[0], fuse.OK
	}
	if cap(buf) < r.s.Len() {
		buf = make([]byte, r.s.Len())
	}
	return buf[:r.s.CopyTo(buf[:r.s.Len()])], fuse.OK
}

func (r spanResult) Slices() ([][]byte, fuse.Status) { return r.s.Parts(), fuse.OK }

func (r spanResult) Done() { r.s.Release() }

// Write implements fusefs.FileWriter.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.n.state.SetWriting(&h.writer, true)
	w, err := h.n.fs.files.Write(ctx, h.n.state, data, off, h.appendOnly)
	if err != nil {
		return uint32(w), h.n.fs.toErrno("write", h.n.key(), err)
	}
	return uint32(w), 0
}

// Flush implements fusefs.FileFlusher. It runs at every close(2): changed
// content is uploaded now, and a failure is returned so close fails.
//
// The upload runs on a context that a signal to the caller cannot cancel:
// programs do not retry close(2), so an interrupted close would look like
// lost data (Go's runtime alone signals its threads constantly).
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	h.n.state.SetWriting(&h.writer, false)
	return h.n.fs.toErrno("close", h.n.key(), h.n.fs.files.Save(ctx, h.n.state))
}

// Fsync implements fusefs.FileFsyncer: the current content is uploaded.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.n.fs.toErrno("fsync", h.n.key(), h.n.fs.files.Save(ctx, h.n.state))
}

// Release implements fusefs.FileReleaser. The kernel ignores its result,
// so it only cleans up.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	ra := h.ra
	h.mu.Unlock()
	if ra != nil {
		ra.Close()
	}
	h.n.closeMode(h)
	h.n.state.SetWriting(&h.writer, false)
	h.n.fs.files.Release(h.n.state)
	return 0
}
