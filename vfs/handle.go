package vfs

import (
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"sync"
	"syscall"

	"mount-ws/bucket"
)

// Handle is an open file. Reads come from the staging copy while the file
// has one (so every handle sees one file), else from S3 through a
// read-ahead pinned to the object version seen at open.
type Handle struct {
	f          *File
	appendOnly bool // O_APPEND: every write goes to the end
	// writer: opened for writing, or written to, and not closed since.
	// A metadata change waits for the close of such a handle.
	writer Writer

	mu   sync.Mutex
	attr Entry      // the version read; guarded by mu
	ra   *ReadAhead // made at the first read from S3; guarded by mu
	// unchecked: attr comes from a listing or lookup, not from S3 at open
	// (see File.MayReadUnchecked); served: data was returned. An unchecked
	// handle that served nothing yet moves to the object's new version
	// when its first GET finds the ETag changed. Both guarded by mu.
	unchecked, served bool
}

// OpenMode is how a file is opened.
type OpenMode struct {
	Write  bool // for writing: the file is staged
	Trunc  bool // O_TRUNC: staged empty
	Append bool // O_APPEND: every write goes to the end
	// Unchecked: the version e given to Open comes from a lookup or
	// listing, not from S3 now (File.MayReadUnchecked).
	Unchecked bool
}

// Open opens f, whose version e an open reads: it is counted, and staged
// when opened for writing. keepCache says the kernel's cached pages are of
// e; staged that the handle reads and writes the staging copy.
// ErrWrongKind: the name holds a link the file was taken for.
func (fs *Files) Open(ctx context.Context, f *File, e Entry, m OpenMode) (h *Handle, keepCache, staged bool, err error) {
	fs.addHandle(f)
	if m.Write {
		if err := fs.stageFile(ctx, f, m.Trunc); err != nil {
			fs.release(f)
			return nil, false, false, err
		}
	}
	keepCache, staged = f.opened(e.ETag, m.Write)
	h = &Handle{f: f, attr: e, unchecked: m.Unchecked, appendOnly: m.Append}
	if m.Write {
		f.setWriting(&h.writer, true)
	}
	return h, keepCache, staged, nil
}

// File is the file h has open.
func (h *Handle) File() *File { return h.f }

// fetcher reads ranges of h's file's object, pinned to one ETag.
func (fs *Files) fetcher(h *Handle, etag string) FetchFunc {
	return func(ctx context.Context, p []byte, off int64) (int, error) {
		key, in := h.f.treeKey()
		if !in {
			return 0, syscall.ESTALE // unlinked: its object is gone
		}
		if n, ok := fs.bodies.Read(key, etag, p, off); ok {
			switch {
			case n == len(p):
				return n, nil
			case n == 0:
				return 0, io.EOF
			}
			return n, io.ErrUnexpectedEOF
		}
		n, err := GetFull(ctx, fs.store, key, p, off, etag)
		if errors.Is(err, iofs.ErrNotExist) {
			return n, syscall.ESTALE // deleted behind the mount
		}
		return n, err
	}
}

// reader is h's read-ahead, made on first use.
func (fs *Files) reader(h *Handle) *ReadAhead {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ra == nil {
		fetch := fs.fetcher(h, h.attr.ETag)
		if fs.cache != nil && h.attr.ETag != "" {
			fetch = fs.cachedFetch(h.f.key, h.attr.ETag, h.attr.Size, fetch)
		}
		h.ra = NewReadAhead(fetch, h.attr.Size, fs.budget, &fs.readAhead)
	}
	return h.ra
}

// Read reads len(p) bytes at off: from the staging copy into p while the
// file has one (s is nil, n the bytes read), else from S3 through the
// handle's read-ahead (a Span the caller releases). Short at the end of
// the file, with io.EOF or io.ErrUnexpectedEOF.
func (fs *Files) Read(ctx context.Context, h *Handle, p []byte, off int64) (n int, s *Span, err error) {
	h.mu.Lock()
	etag := h.attr.ETag
	h.mu.Unlock()
	n, staged, err := fs.readStaged(ctx, h.f, p, off, etag)
	if staged {
		return n, nil, err
	}
	s, err = fs.readS3(ctx, h, off, len(p))
	return 0, s, err
}

// readS3 reads n bytes at off from the object. An unchecked handle whose
// first GET finds the object replaced moves to the new version and reads
// again: no data of the old one was returned, so the open may as well
// have come after the change. Once data was served, a change is ESTALE.
func (fs *Files) readS3(ctx context.Context, h *Handle, off int64, n int) (*Span, error) {
	ra := fs.reader(h)
	s, err := ra.Read(ctx, off, n)
	if err != nil && s.Len() == 0 && fs.moveToCurrent(ctx, h, ra, err) {
		s.Release()
		s, err = fs.reader(h).Read(ctx, off, n)
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
func (fs *Files) moveToCurrent(ctx context.Context, h *Handle, failed *ReadAhead, err error) bool {
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
	e, herr := fs.Revalidate(ctx, h.f)
	if herr != nil || e.Kind() != h.f.nodeNow().Kind() {
		return false
	}
	h.mu.Lock()
	swapped := h.ra == failed
	if swapped {
		h.attr, h.ra, h.unchecked = e, nil, false
	}
	h.mu.Unlock()
	if swapped {
		h.f.setCacheETag(e.ETag) // the kernel caches what this handle reads now
		failed.Close()           // waits for its fetches: not under the handle's lock
	}
	return true
}

// WriteAt stores p at off (at the end for an O_APPEND handle); the
// handle's close saves it.
func (fs *Files) WriteAt(ctx context.Context, h *Handle, p []byte, off int64) (int, error) {
	h.f.setWriting(&h.writer, true)
	return fs.write(ctx, h.f, p, off, h.appendOnly)
}

// Flush is close(2) of h: changed content is saved now, and a failure
// returned, so that close fails.
func (fs *Files) Flush(ctx context.Context, h *Handle) error {
	h.f.setWriting(&h.writer, false)
	return fs.Save(ctx, h.f)
}

// CloseHandle releases h once the kernel is done with it (Release).
func (fs *Files) CloseHandle(h *Handle) {
	h.mu.Lock()
	ra := h.ra
	h.mu.Unlock()
	if ra != nil {
		ra.Close()
	}
	h.f.setWriting(&h.writer, false)
	fs.release(h.f)
}
