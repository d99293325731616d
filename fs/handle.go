package fs

import (
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// handle is an open file. Reads come from the staging copy while the file
// has one (so every handle sees one file), else from S3 through a
// read-ahead pinned to the object version seen at open.
type handle struct {
	n          *file
	attr       entry // at open
	appendOnly bool  // O_APPEND: every write goes to the end
	// open: opened for writing, or written to, and not closed since;
	// guarded by n.mu. Setattr waits for the close of such a handle.
	open bool

	ra *readAhead // created on the first read from S3; guarded by the kernel's serialisation of release
}

var (
	_ fusefs.FileReader   = (*handle)(nil)
	_ fusefs.FileWriter   = (*handle)(nil)
	_ fusefs.FileFlusher  = (*handle)(nil)
	_ fusefs.FileFsyncer  = (*handle)(nil)
	_ fusefs.FileReleaser = (*handle)(nil)
)

// fetch reads one range of the object, pinned to the ETag seen at open.
func (h *handle) fetch(ctx context.Context, p []byte, off int64) (int, error) {
	key := h.n.key()
	if key == "" {
		return 0, syscall.ESTALE // unlinked: its object is gone
	}
	body, err := h.n.fs.b.Get(ctx, key, off, int64(len(p)), h.attr.etag)
	if errors.Is(err, iofs.ErrNotExist) {
		return 0, syscall.ESTALE // deleted behind the mount
	}
	if err != nil {
		return 0, err
	}
	defer body.Close()
	return io.ReadFull(body, p)
}

// Read implements fusefs.FileReader.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, staged, err := h.n.readStaged(dest, off)
	if !staged {
		h.n.mu.Lock()
		if h.ra == nil {
			h.ra = newReadAhead(h.fetch, h.attr.size, h.n.fs.budget)
		}
		ra := h.ra
		h.n.mu.Unlock()
		n, err = ra.ReadAt(ctx, dest, off)
	}
	if err != nil && !errors.Is(err, io.EOF) && !(errors.Is(err, io.ErrUnexpectedEOF) && n > 0) {
		return nil, h.n.fs.toErrno("read", h.n.key(), err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Write implements fusefs.FileWriter.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.n.setWriting(h, true)
	w, err := h.n.write(ctx, data, off, h.appendOnly)
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
	h.n.setWriting(h, false)
	return h.n.fs.toErrno("close", h.n.key(), h.n.save(ctx))
}

// Fsync implements fusefs.FileFsyncer: the current content is uploaded.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return h.n.fs.toErrno("fsync", h.n.key(), h.n.save(ctx))
}

// Release implements fusefs.FileReleaser. The kernel ignores its result,
// so it only cleans up.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	if h.ra != nil {
		h.ra.close()
	}
	h.n.setWriting(h, false)
	h.n.release()
	return 0
}
