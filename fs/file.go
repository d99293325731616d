package fs

import (
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// file is a regular file node; key is its relative object key.
type file struct {
	fusefs.Inode
	fs  *FS
	key string

	mu        sync.Mutex
	attr      entry     // size, mtime, ETag as last seen; guarded by mu
	checkedAt time.Time // when attr was last confirmed by S3; guarded by mu
	cacheETag string    // ETag of what the kernel's page cache holds; guarded by mu
}

var (
	_ fusefs.NodeGetattrer = (*file)(nil)
	_ fusefs.NodeOpener    = (*file)(nil)
	_ fusefs.NodeSetattrer = (*file)(nil)
)

func (f *FS) newFile(key string, e entry) *file {
	return &file{fs: f, key: key, attr: e, checkedAt: time.Now()}
}

// update records attributes seen in a listing or lookup.
func (n *file) update(e entry) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.attr, n.checkedAt = e, time.Now()
}

// current returns the file's attributes, asking S3 when they are older than
// the metadata TTL.
func (n *file) current(ctx context.Context) (entry, error) {
	n.mu.Lock()
	e, fresh := n.attr, time.Since(n.checkedAt) < n.fs.opts.MetadataTTL
	n.mu.Unlock()
	if fresh {
		return e, nil
	}
	o, err := n.fs.b.Head(ctx, n.key)
	if err != nil {
		return entry{}, err
	}
	e = entry{size: o.Size, mtime: o.LastModified, etag: o.ETag}
	n.update(e)
	return e, nil
}

// Getattr implements fusefs.NodeGetattrer.
func (n *file) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := fh.(*handle); ok {
		// An open file keeps the attributes it was opened with.
		n.fs.fillAttr(&out.Attr, n.key, h.attr)
		return 0
	}
	e, err := n.current(ctx)
	if err != nil {
		return n.fs.toErrno("getattr", n.key, err)
	}
	n.fs.fillAttr(&out.Attr, n.key, e)
	out.SetTimeout(n.fs.opts.MetadataTTL)
	return 0
}

// Setattr implements fusefs.NodeSetattrer: nothing can change yet.
func (n *file) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return n.fs.writeErrno()
}

// Open implements fusefs.NodeOpener. The kernel keeps the file's cached
// pages when its ETag is the one they were read with.
func (n *file) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, n.fs.writeErrno()
	}
	e, err := n.current(ctx)
	if errors.Is(err, iofs.ErrNotExist) {
		return nil, 0, syscall.ENOENT
	}
	if err != nil {
		return nil, 0, n.fs.toErrno("open", n.key, err)
	}
	n.mu.Lock()
	keep := e.etag != "" && e.etag == n.cacheETag
	n.cacheETag = e.etag
	n.mu.Unlock()
	var fuseFlags uint32
	if keep {
		fuseFlags |= fuse.FOPEN_KEEP_CACHE
	}
	return n.fs.newHandle(n.key, e), fuseFlags, 0
}

// handle is an open file: a read-ahead over the object as it was at open.
type handle struct {
	fs   *FS
	key  string
	attr entry
	ra   *readAhead
}

var (
	_ fusefs.FileReader   = (*handle)(nil)
	_ fusefs.FileReleaser = (*handle)(nil)
)

func (f *FS) newHandle(key string, e entry) *handle {
	h := &handle{fs: f, key: key, attr: e}
	h.ra = newReadAhead(h.fetch, e.size, f.budget)
	return h
}

// fetch reads one range of the object, pinned to the ETag seen at open.
func (h *handle) fetch(ctx context.Context, p []byte, off int64) (int, error) {
	body, err := h.fs.b.Get(ctx, h.key, off, int64(len(p)), h.attr.etag)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	return io.ReadFull(body, p)
}

// Read implements fusefs.FileReader.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.ra.ReadAt(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) && !(errors.Is(err, io.ErrUnexpectedEOF) && n > 0) {
		return nil, h.fs.toErrno("read", h.key, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Release implements fusefs.FileReleaser.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.ra.close()
	return 0
}
