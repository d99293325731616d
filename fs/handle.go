package fs

import (
	"context"
	"errors"
	"io"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mount-ws/vfs"
)

// handle is an open file (vfs.Handle) as go-fuse sees it.
type handle struct {
	n             *file
	h             *vfs.Handle
	passedThrough bool // the kernel reads it from the data cache (passthrough.go); set at open
}

var (
	_ fusefs.FileReader   = (*handle)(nil)
	_ fusefs.FileWriter   = (*handle)(nil)
	_ fusefs.FileFlusher  = (*handle)(nil)
	_ fusefs.FileFsyncer  = (*handle)(nil)
	_ fusefs.FileReleaser = (*handle)(nil)
)

// Read implements fusefs.FileReader.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, s, err := h.n.fs.files.Read(ctx, h.h, dest, off)
	if s == nil { // read from the staging copy
		if readFailed(err, n) {
			return nil, h.n.fs.toErrno("read", h.n.key(), err)
		}
		return fuse.ReadResultData(dest[:n]), 0
	}
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
	w, err := h.n.fs.files.WriteAt(ctx, h.h, data, off)
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
	return h.n.fs.toErrno("close", h.n.key(), h.n.fs.files.Flush(ctx, h.h))
}

// Fsync implements fusefs.FileFsyncer: the current content is uploaded.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.n.fs.toErrno("fsync", h.n.key(), h.n.fs.files.Save(ctx, h.n.state))
}

// Release implements fusefs.FileReleaser. The kernel ignores its result,
// so it only cleans up.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.n.closeMode(h)
	h.n.fs.files.CloseHandle(h.h)
	return 0
}
