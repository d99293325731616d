package vfs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"maps"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"mount-ws/bucket"
	"mount-ws/spans"
)

// Store is what staging copies need of the storage. *bucket.Bucket
// implements it; see there for the contracts.
type Store interface {
	Getter
	Header
	// Upload writes an object: with one PUT up to the part size, else a
	// multipart upload.
	Upload(ctx context.Context, key string, src io.ReaderAt, size int64, meta bucket.Meta, opts bucket.UploadOptions) (bucket.Object, error)
	// StartStream begins a multipart upload fed part by part.
	StartStream(ctx context.Context, key string, meta bucket.Meta, opts bucket.UploadOptions) (*bucket.Stream, error)
	// Copy copies src to dst on the server; meta nil keeps the metadata.
	Copy(ctx context.Context, src, dst string, meta *bucket.Meta, srcETag string) (bucket.Object, error)
}

// MaxFileSize is the largest object S3 stores (5 TiB): a file cannot grow
// past it.
const MaxFileSize = 5 << 40

// fetchBlock is the granularity of fetches into a staging copy: reads
// through a file open for writing fetch at least this much at a time.
const fetchBlock = 4 << 20

// ErrReplacedWhileOpen: the object a partly fetched staging copy was
// based on changed before the copy could be saved. Retrying cannot help.
var ErrReplacedWhileOpen = fmt.Errorf("the object changed while open for writing, and the parts of it this mount did not fetch are gone: %w", syscall.ESTALE)

// Space counts the bytes of all staging copies of a mount against a limit.
type Space struct {
	mu    sync.Mutex
	used  int64 // guarded by mu
	limit int64
}

// NewSpace returns a limit of limit bytes.
func NewSpace(limit int64) *Space { return &Space{limit: limit} }

// Usage returns the bytes held and the limit.
func (s *Space) Usage() (used, limit int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used, s.limit
}

// grow charges delta more bytes; growing past the limit fails with ENOSPC.
func (s *Space) grow(delta int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if delta > 0 && s.used+delta > s.limit {
		return fmt.Errorf("staging cache full (%d of %d MiB used; raise --cache-size-mib): %w",
			s.used>>20, s.limit>>20, syscall.ENOSPC)
	}
	s.used += delta
	return nil
}

// StagingArea is what the staging copies of one mount share.
type StagingArea struct {
	Store Store
	// Dir holds the staging files, each removed as soon as it is made, so
	// nothing is left behind if the process dies (what close or fsync did
	// not save was never promised).
	Dir         string
	Space       *Space
	Budget      *Budget  // buffers of the fetches from the bucket
	Journal     *Journal // multipart uploads in progress
	PartSize    int64
	Concurrency int // parts in flight per upload
	Log         *slog.Logger
}

// Staging is the local copy of a file open for writing, or holding data
// not saved yet.
//
// Its methods may be called from any goroutine: ops serialises those that
// change it or talk to the bucket, and mu, a leaf, guards what the
// getters read. A field changed under both may be read under either;
// streamed, parts and charged are changed and read under ops only.
type Staging struct {
	area *StagingArea
	f    *os.File

	ops sync.Mutex

	mu    sync.Mutex
	size  int64
	dirty bool // changed since the last save

	// A file written from empty, front to back, is uploaded while it is
	// written: each full part goes as soon as it is written (see
	// streamParts), so a save has only the last part to send.
	canStream bool           // no write has gone back yet
	stream    *bucket.Stream // the upload in progress, if started
	streamed  int64          // bytes handed to the stream (whole parts); guarded by ops
	parts     int            // parts handed to the stream; guarded by ops
	streamMD  bucket.Meta
	rec       *record // the stream's record in the journal

	// base, when set, is the object version the copy was made from, so
	// that its bytes need not all be fetched: of base's bytes [0,
	// baseSize) (what truncations left of them), those outside have are
	// still only in the object, and the staging file has a hole there. A
	// write, an append or a truncation fetches nothing; a read fetches
	// the ranges it needs; a save sends only the parts that changed and
	// copies the others from base on the server (savePartial), on
	// condition that base is still the object. changed is what was
	// written over base's bytes since.
	base     *objectVersion
	baseSize int64
	have     spans.Set
	changed  spans.Set
	// charged is what the copy counts against Space: the bytes it holds,
	// not its holes. Guarded by ops.
	charged int64
	// unsure is the token of the last partial save whose answer was an
	// error: S3 may still have committed it, replacing base with this
	// mount's own content (a connection lost after the commit).
	unsure string
}

// objectVersion names one version of an object.
type objectVersion struct {
	key, etag string
}

func (a *StagingArea) newStaging() (*Staging, error) {
	f, err := openUnnamed(a.Dir)
	if errors.Is(err, iofs.ErrNotExist) {
		if err := os.MkdirAll(a.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("staging dir: %w", err)
		}
		f, err = openUnnamed(a.Dir)
	}
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EISDIR) {
		f, err = openNamed(a.Dir) // no O_TMPFILE on that filesystem
	}
	if err != nil {
		return nil, fmt.Errorf("staging file: %w", err)
	}
	return &Staging{area: a, f: f}, nil
}

// openUnnamed makes a file in dir that has no name (O_TMPFILE): it goes
// when closed, and with the process if it crashes. One system call, where
// a named file takes three (make, open, remove): a program creating files
// in one directory pays for each in turn, since the kernel holds that
// directory's lock across every CREATE it sends the mount.
func openUnnamed(dir string) (*os.File, error) {
	// os.OpenFile, not a bare open(2): it retries on EINTR, which the Go
	// runtime's preemption signals cause on slow filesystems.
	return os.OpenFile(dir, unix.O_TMPFILE|os.O_RDWR, 0o600)
}

// openNamed makes a file in dir and removes its name at once.
func openNamed(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "stage-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

// Empty makes an empty copy, dirty when the empty file is a change to
// save (a file created here, or truncated).
func (a *StagingArea) Empty(dirty bool) (*Staging, error) {
	st, err := a.newStaging()
	if err != nil {
		return nil, err
	}
	st.dirty, st.canStream = dirty, true
	return st, nil
}

// Based makes a copy of the object version key/etag of size bytes, none
// of them fetched yet: a hole until read or saved, and not charged until
// then.
func (a *StagingArea) Based(key, etag string, size int64) (*Staging, error) {
	if size == 0 {
		return a.Empty(false)
	}
	st, err := a.newStaging()
	if err != nil {
		return nil, err
	}
	if err := st.f.Truncate(size); err != nil {
		st.f.Close()
		return nil, fmt.Errorf("staging file: %w", err)
	}
	st.size, st.base, st.baseSize = size, &objectVersion{key: key, etag: etag}, size
	return st, nil
}

// Size is the file's size as the copy has it.
func (st *Staging) Size() int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.size
}

// Dirty reports whether the copy changed since its last save.
func (st *Staging) Dirty() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.dirty
}

// Streaming reports whether an upload of the copy is under way.
func (st *Staging) Streaming() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.stream != nil
}

// Discard forgets the copy's changes: they cannot be saved (another
// program replaced the object it was based on).
func (st *Staging) Discard() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dirty = false
}

// MetaCopied records that key's object was copied onto itself as etag
// (new metadata, the same bytes): if it is the copy's base, that version
// is the base now.
func (st *Staging) MetaCopied(key, etag string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.base != nil && st.base.key == key {
		st.base = &objectVersion{key: key, etag: etag}
	}
}

// Close abandons an upload under way and frees the copy and its space.
func (st *Staging) Close() {
	st.ops.Lock()
	defer st.ops.Unlock()
	st.stopStream()
	st.area.Space.grow(-st.charged)
	st.charged = 0
	st.f.Close()
}

// wrote records that [off, end) of the staging file was written. st.mu
// must be held.
func (st *Staging) wrote(off, end int64) {
	if st.base == nil {
		return
	}
	end = min(end, st.baseSize)
	st.have.Add(off, end)
	st.changed.Add(off, end)
}

// cut records a truncation to size. st.mu must be held.
func (st *Staging) cut(size int64) {
	if st.base == nil || size >= st.baseSize {
		return
	}
	st.baseSize = size
	st.have.Clip(size)
	st.changed.Clip(size)
	if size == 0 {
		st.base = nil
	}
}

// holes returns the ranges of [off, end) that are still only in base.
// st.mu must be held.
func (st *Staging) holes(off, end int64) []spans.Span {
	if st.base == nil {
		return nil
	}
	return st.have.Missing(off, min(end, st.baseSize))
}

// rebase makes the object version just saved from the copy its base: the
// bytes the copy lacks are that version's now, at the same offsets, and
// nothing is changed or dirty. st.mu must be held.
func (st *Staging) rebase(v objectVersion) {
	if st.base == nil {
		st.have = spans.Set{}
		st.have.Add(0, st.size)
	} else {
		// Bytes past the old base were written here: held, not holes.
		st.have.Add(st.baseSize, st.size)
	}
	st.base, st.baseSize, st.changed, st.unsure = &v, st.size, spans.Set{}, ""
	st.dirty = false
}

// take charges st for n more bytes it is about to hold, within the limit.
// st.ops must be held.
func (st *Staging) take(n int64) error {
	if n <= 0 {
		return nil
	}
	if err := st.area.Space.grow(n); err != nil {
		return err
	}
	st.charged += n
	return nil
}

// settle brings st's charge to the bytes it holds now: what it lacks of
// its base is not counted. Bytes fetched to be read or saved are charged
// past the limit if need be (the limit is for what programs write).
// st.ops must be held.
func (st *Staging) settle() {
	st.mu.Lock()
	held := st.size
	if st.base != nil {
		held -= st.baseSize - st.have.Len()
	}
	st.mu.Unlock()
	st.area.Space.mu.Lock()
	st.area.Space.used += held - st.charged
	st.area.Space.mu.Unlock()
	st.charged = held
}

// Detach fetches every byte the copy still lacks and forgets its base:
// the object is about to move or go (rename, unlink), and the copy must
// then stand on its own. Not cancelled by the caller's context: a rename
// or unlink waits for it and must not fail half-way.
func (st *Staging) Detach(ctx context.Context) error {
	st.ops.Lock()
	defer st.ops.Unlock()
	if err := st.fetch(context.WithoutCancel(ctx), 0, st.Size()); err != nil {
		return err
	}
	st.mu.Lock()
	st.base, st.baseSize, st.have, st.changed = nil, 0, spans.Set{}, spans.Set{}
	st.mu.Unlock()
	return nil
}

// fetch downloads the bytes of [off, end) that the copy lacks from its
// base version. st.ops must be held.
func (st *Staging) fetch(ctx context.Context, off, end int64) error {
	st.mu.Lock()
	holes, base := st.holes(off, end), st.base
	st.mu.Unlock()
	for _, h := range holes {
		err := st.load(ctx, base.key, base.etag, h.Off, h.End)
		if errors.Is(err, bucket.ErrPrecondition) {
			own, oerr := st.ownSave(ctx)
			if oerr != nil {
				return oerr
			}
			if own {
				return st.fetch(ctx, off, end) // from this mount's own save
			}
		}
		if err != nil {
			return err
		}
		st.mu.Lock()
		st.have.Add(h.Off, h.End)
		st.mu.Unlock()
		st.settle()
	}
	return nil
}

// load copies bytes [off, end) of the object version key/etag into the
// staging file, in parallel ranges.
func (st *Staging) load(ctx context.Context, key, etag string, off, end int64) error {
	ra := NewReadAhead(func(ctx context.Context, p []byte, at int64) (int, error) {
		return GetFull(ctx, st.area.Store, key, p, at, etag)
	}, end, st.area.Budget, nil)
	defer ra.Close()
	for off < end {
		s, err := ra.Read(ctx, off, int(min(1<<20, end-off)))
		for _, part := range s.Parts() {
			if _, werr := st.f.WriteAt(part, off); werr != nil {
				s.Release()
				return fmt.Errorf("staging write: %w", werr)
			}
			off += int64(len(part))
		}
		s.Release()
		if err != nil && !(errors.Is(err, io.EOF) && off == end) {
			return fmt.Errorf("fetch %s for writing: %w", key, err)
		}
	}
	return nil
}

// Resize truncates or extends the copy to size.
func (st *Staging) Resize(size int64) error {
	if size > MaxFileSize {
		return fmt.Errorf("size %d past S3's largest object: %w", size, syscall.EFBIG)
	}
	st.ops.Lock()
	defer st.ops.Unlock()
	if size < st.streamed {
		st.stopStream()
	}
	if err := st.take(size - st.Size()); err != nil {
		return err
	}
	if err := st.f.Truncate(size); err != nil {
		st.settle()
		return fmt.Errorf("staging truncate: %w", err)
	}
	st.mu.Lock()
	if size == 0 {
		// The file can again be uploaded while it is written.
		st.canStream = st.stream == nil
	}
	st.cut(size)
	st.size, st.dirty = size, true
	st.mu.Unlock()
	st.settle()
	return nil
}

// Namer tells a copy the key and metadata of its file, for an upload
// started while it is written.
type Namer func() (key string, md bucket.Meta)

// Write stores p at off (at the end when appendOnly) and returns how much
// was written and the copy's size after. name is asked only when a full
// part is ready to be uploaded early.
func (st *Staging) Write(ctx context.Context, p []byte, off int64, appendOnly bool, name Namer) (int, int64, error) {
	st.ops.Lock()
	defer st.ops.Unlock()
	if appendOnly {
		off = st.Size()
	}
	if off < st.streamed {
		st.stopStream() // a part already sent is being changed
	}
	end := off + int64(len(p))
	if end > MaxFileSize {
		return 0, st.Size(), fmt.Errorf("write to %d past S3's largest object: %w", end, syscall.EFBIG)
	}
	// What the copy will hold in addition: past its end, and its holes
	// that the write fills.
	st.mu.Lock()
	more := max(0, end-st.size)
	for _, h := range st.holes(off, end) {
		more += h.End - h.Off
	}
	st.mu.Unlock()
	if err := st.take(more); err != nil {
		return 0, st.Size(), err
	}
	w, err := st.f.WriteAt(p, off)
	st.mu.Lock()
	st.wrote(off, off+int64(w))
	st.size = max(st.size, off+int64(w))
	st.dirty = true
	size := st.size
	st.mu.Unlock()
	if err != nil {
		st.settle()
		return w, size, fmt.Errorf("staging write: %w", err)
	}
	st.streamParts(ctx, name)
	return w, size, nil
}

// streamParts hands every full part written so far to the upload stream,
// starting it at the first one. A failure to start only means the file is
// uploaded whole when saved. st.ops must be held.
func (st *Staging) streamParts(ctx context.Context, name Namer) {
	ps := st.area.PartSize
	size := st.Size()
	// A part goes once a byte past it is written: a file of exactly one
	// part is then still sent with one PUT, as promised.
	if !st.canStream || size-st.streamed <= ps {
		return
	}
	if st.stream == nil {
		key, md := name()
		rec := st.area.record(key)
		stream, err := st.area.Store.StartStream(ctx, key, md, bucket.UploadOptions{
			Concurrency: st.area.Concurrency,
			OnCreate:    rec.created,
		})
		if err != nil {
			st.area.Log.Warn("could not start uploading while writing; the file will be uploaded at close", slog.String("path", key), slog.Any("err", err))
			st.mu.Lock()
			st.canStream = false
			st.mu.Unlock()
			return
		}
		st.mu.Lock()
		st.stream, st.streamMD, st.rec = stream, md, rec
		st.mu.Unlock()
	}
	for size-st.streamed > ps {
		st.parts++
		st.stream.AddPart(st.parts, st.f, st.streamed, ps)
		st.streamed += ps
	}
}

// StopStream abandons an upload under way; the file is uploaded whole when
// saved. An object about to move stops its stream, which would complete
// under the old name.
func (st *Staging) StopStream() {
	st.ops.Lock()
	defer st.ops.Unlock()
	st.stopStream()
}

// stopStream is StopStream with st.ops held.
func (st *Staging) stopStream() {
	st.mu.Lock()
	st.canStream = false
	stream, rec := st.stream, st.rec
	st.stream, st.rec, st.streamed, st.parts = nil, nil, 0, 0
	st.mu.Unlock()
	if stream == nil {
		return
	}
	if err := stream.Abort(context.Background()); err == nil {
		rec.done(nil)
	}
}

// Read serves a read from the copy, fetching what it lacks of the range
// first. ok is false when the read should go to the bucket instead: the
// range is wholly bytes the copy never held of the version the caller
// reads (etag), which the bucket serves through a read-ahead as fast as
// for a file not being written.
func (st *Staging) Read(ctx context.Context, p []byte, off int64, etag string) (int, bool, error) {
	end := off + int64(len(p))
	st.mu.Lock()
	size := st.size
	holes := st.holes(off, end)
	untouched := st.base != nil && st.base.etag == etag && end <= st.baseSize &&
		len(holes) == 1 && holes[0] == spans.Span{Off: off, End: end}
	st.mu.Unlock()
	if untouched {
		return 0, false, nil
	}
	if len(holes) > 0 {
		// Whole blocks, so that reading on fetches in large requests.
		from := off / fetchBlock * fetchBlock
		to := (end + fetchBlock - 1) / fetchBlock * fetchBlock
		st.ops.Lock()
		err := st.fetch(ctx, from, to)
		st.ops.Unlock()
		if err != nil {
			return 0, true, err
		}
	}
	if off >= size {
		return 0, true, nil
	}
	got, err := st.f.ReadAt(p[:min(int64(len(p)), size-off)], off)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return got, true, err
}

// Save stores the copy as key with metadata md, if it is dirty: on
// success the object is exactly the copy's bytes, and its version the
// copy's base; on failure the copy keeps everything for the next save.
// A stream under way is completed; else only the parts that changed are
// sent when the copy has a base and more than a part; else it goes whole.
// ok is false when there was nothing to save.
func (st *Staging) Save(ctx context.Context, key string, md bucket.Meta) (o bucket.Object, ok bool, err error) {
	st.ops.Lock()
	defer st.ops.Unlock()
	if !st.Dirty() {
		return bucket.Object{}, false, nil
	}
	o, streamed, err := st.finishStream(ctx, key, md)
	if err != nil {
		return o, true, err
	}
	if !streamed {
		if o, err = st.uploadChanged(ctx, key, md); err != nil {
			return o, true, err
		}
	}
	st.mu.Lock()
	st.rebase(objectVersion{key: key, etag: o.ETag})
	st.mu.Unlock()
	return o, true, nil
}

// SaveWhole stores every byte of the copy as key, dirty or not, in one
// upload that copies nothing from its base: for a rename, which moves the
// file's unsaved content to the new name.
func (st *Staging) SaveWhole(ctx context.Context, key string, md bucket.Meta) (bucket.Object, error) {
	st.ops.Lock()
	defer st.ops.Unlock()
	st.stopStream()
	if err := st.fetch(context.WithoutCancel(ctx), 0, st.Size()); err != nil {
		return bucket.Object{}, err
	}
	o, err := st.upload(ctx, key, md)
	if err != nil {
		return o, err
	}
	st.mu.Lock()
	st.base = nil
	st.rebase(objectVersion{key: key, etag: o.ETag})
	st.mu.Unlock()
	return o, nil
}

// finishStream sends the last part and completes a streamed upload. ok is
// false when there was no usable stream: then the caller uploads the file
// whole. st.ops must be held.
func (st *Staging) finishStream(ctx context.Context, key string, md bucket.Meta) (bucket.Object, bool, error) {
	st.mu.Lock()
	stream, rec, size := st.stream, st.rec, st.size
	st.mu.Unlock()
	if stream == nil {
		return bucket.Object{}, false, nil
	}
	if size > st.streamed {
		st.parts++
		stream.AddPart(st.parts, st.f, st.streamed, size-st.streamed)
	}
	parts := st.parts
	st.mu.Lock()
	st.stream, st.rec, st.canStream, st.streamed, st.parts = nil, nil, false, 0, 0
	st.mu.Unlock()
	o, err := stream.Complete(ctx, parts, size, bucket.UploadOptions{})
	rec.done(err)
	if err != nil {
		// Not lost: the staged data is still here; upload it whole.
		st.area.Log.Warn("streamed upload failed, uploading the file whole", slog.String("path", key), slog.Any("err", err))
		return bucket.Object{}, false, nil
	}
	if !maps.Equal(md.User, st.streamMD.User) {
		// Mode, owner or mtime changed while the file was written.
		o2, err := st.area.Store.Copy(ctx, key, key, &md, o.ETag)
		if err != nil {
			return o, true, err
		}
		o = o2
	}
	return o, true, nil
}

// uploadChanged saves the copy as key: only its changed parts, the others
// copied on the server from its base version, when it has a base and is
// larger than a part; else whole. st.ops must be held.
func (st *Staging) uploadChanged(ctx context.Context, key string, md bucket.Meta) (bucket.Object, error) {
	st.mu.Lock()
	based, size := st.base != nil, st.size
	st.mu.Unlock()
	partSize := bucket.PartSize(st.area.PartSize, size)
	if based && size > partSize {
		o, err := st.savePartial(ctx, key, md, partSize)
		if errors.Is(err, bucket.ErrPrecondition) {
			own, oerr := st.ownSave(ctx)
			if oerr != nil {
				return o, oerr
			}
			if own {
				o, err = st.savePartial(ctx, key, md, partSize)
			}
		}
		// A base changed or gone: what the copy lacks is lost with it.
		if !errors.Is(err, bucket.ErrPrecondition) && !errors.Is(err, iofs.ErrNotExist) {
			return o, err
		}
		st.mu.Lock()
		lacking := len(st.holes(0, st.size)) > 0
		st.mu.Unlock()
		if lacking {
			return o, fmt.Errorf("save %s: %w (%w)", key, ErrReplacedWhileOpen, err)
		}
		// Every byte is here: saved whole, the last upload wins (as
		// for a file rewritten whole).
	}
	if err := st.fetch(ctx, 0, size); err != nil {
		if errors.Is(err, bucket.ErrPrecondition) || errors.Is(err, iofs.ErrNotExist) {
			return bucket.Object{}, fmt.Errorf("save %s: %w (%w)", key, ErrReplacedWhileOpen, err)
		}
		return bucket.Object{}, err
	}
	return st.upload(ctx, key, md)
}

// savePartial saves the copy as a multipart upload in which the unchanged
// ranges of base are copied on the server, each in as few parts as S3
// allows (on condition that base is still the object), and only the
// changed ranges are sent, widened to S3's smallest part and after
// fetching the base bytes they lack (see PartialLayout). Appending a line
// to a large file so costs one copy and the line; a byte in its middle,
// two copies and 5 MiB. st.ops must be held.
func (st *Staging) savePartial(ctx context.Context, key string, md bucket.Meta, partSize int64) (bucket.Object, error) {
	st.mu.Lock()
	size := st.size
	parts, ok := PartialLayout(size, st.baseSize, st.changed.Spans(), partSize,
		PartLimits{Min: bucket.MinPartSize, Max: bucket.MaxPartSize, Count: bucket.MaxParts})
	if !ok {
		// More parts than S3 allows (a file of very many scattered
		// changes): parts of partSize, each copied if unchanged.
		parts = parts[:0]
		for off := int64(0); off < size; off += partSize {
			end := min(off+partSize, size)
			parts = append(parts, SavePart{Off: off, N: end - off, Copied: end <= st.baseSize && !st.changed.Intersects(off, end)})
		}
	}
	st.mu.Unlock()
	for _, p := range parts {
		if !p.Copied {
			if err := st.fetch(ctx, p.Off, p.Off+p.N); err != nil {
				return bucket.Object{}, err
			}
		}
	}
	// Read after the fetches: one may have found the base to be this
	// mount's own lost save and moved to it (ownSave).
	st.mu.Lock()
	base := *st.base
	st.mu.Unlock()
	token := rand.Text()
	md.User = maps.Clone(md.User)
	md.User[MetaSave] = token
	rec := st.area.record(key)
	stream, err := st.area.Store.StartStream(ctx, key, md, bucket.UploadOptions{
		Concurrency: st.area.Concurrency,
		OnCreate:    rec.created,
	})
	if err != nil {
		return bucket.Object{}, err
	}
	for i, p := range parts {
		if p.Copied {
			stream.AddCopyPart(i+1, base.key, base.etag, p.Off, p.N)
		} else {
			stream.AddPart(i+1, st.f, p.Off, p.N)
		}
	}
	o, err := stream.Complete(ctx, len(parts), size, bucket.UploadOptions{})
	rec.done(err)
	if err != nil && !errors.Is(err, bucket.ErrPrecondition) {
		st.mu.Lock()
		st.unsure = token
		st.mu.Unlock()
	}
	return o, err
}

// ownSave reports whether the object that replaced the copy's base is
// this mount's own last partial save, whose answer was lost; if so, that
// version becomes the base. Its bytes are the file's as they were then,
// at the same offsets, so what the copy lacks is there too; what was
// written since is still marked changed. st.ops must be held.
func (st *Staging) ownSave(ctx context.Context) (bool, error) {
	st.mu.Lock()
	token, base := st.unsure, st.base
	st.mu.Unlock()
	if token == "" || base == nil {
		return false, nil
	}
	o, err := st.area.Store.Head(ctx, base.key)
	if errors.Is(err, iofs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		// Cannot tell yet: keep the data and the token for a retry.
		return false, fmt.Errorf("check whether a lost save was stored: %w", err)
	}
	if o.Metadata[MetaSave] != token {
		return false, nil
	}
	st.mu.Lock()
	st.base, st.unsure = &objectVersion{key: base.key, etag: o.ETag}, ""
	st.mu.Unlock()
	st.area.Log.Info("a save whose answer was lost had been stored; going on from it", slog.String("path", base.key))
	return true, nil
}

// upload writes the whole copy as key: one PUT when small, else a
// multipart upload with parallel parts (bucket.Upload decides), recorded
// in the journal while it runs so that a crash leaves no incomplete
// upload behind for long. st.ops must be held.
func (st *Staging) upload(ctx context.Context, key string, md bucket.Meta) (bucket.Object, error) {
	rec := st.area.record(key)
	o, err := st.area.Store.Upload(ctx, key, st.f, st.Size(), md, bucket.UploadOptions{
		PartSize:    st.area.PartSize,
		Concurrency: st.area.Concurrency,
		OnCreate:    rec.created,
	})
	rec.done(err)
	return o, err
}

// record is the journal's record of one multipart upload of key, made
// when S3 creates the upload.
type record struct {
	journal *Journal
	key     string
	forget  func()
}

func (a *StagingArea) record(key string) *record { return &record{journal: a.Journal, key: key} }

// created is the upload's bucket.UploadOptions.OnCreate.
func (r *record) created(uploadID string) { r.forget = r.journal.Add(r.key, uploadID) }

// done drops the record once the upload ended, completed or aborted (err
// is how it ended); one that could not be aborted keeps its record, for
// the next mount to abort (Journal.Recover).
func (r *record) done(err error) {
	var left *bucket.UploadLeftError
	if r != nil && r.forget != nil && !errors.As(err, &left) {
		r.forget()
	}
}
