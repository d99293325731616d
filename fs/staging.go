package fs

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
	"strings"
	"sync"
	"syscall"
	"time"

	"mount-ws/bucket"
	"mount-ws/spans"
	"mount-ws/vfs"
)

// staging is the local copy of a file open for writing: an unlinked file in
// the cache directory, so nothing is left behind if the process dies (what
// was not saved by close or fsync was never promised).
type staging struct {
	f     *os.File
	size  int64
	dirty bool // changed since the last upload

	// A file written from empty, front to back, is uploaded while it is
	// written: each full part goes as soon as it is written (see
	// streamParts), so close has only the last part to send.
	canStream bool           // no write has gone back yet
	stream    *bucket.Stream // the upload in progress, if started
	streamed  int64          // bytes handed to the stream (whole parts)
	parts     int            // parts handed to the stream
	streamMD  bucket.Meta
	forget    func() // drops the journal record of the stream

	// base, when set, is the object version the staging copy was made
	// from, so that its bytes need not all be fetched: of base's bytes
	// [0, baseSize) (what truncations left of them), those outside have
	// are still only in the object, and the staging file has a hole
	// there. A write, an append or a truncation fetches nothing; a read
	// fetches the ranges it needs; a save sends only the parts that
	// changed and copies the others from base on the server (savePartial),
	// on condition that base is still the object. changed is what was
	// written over base's bytes since. Set under the file's io and mu,
	// read under either.
	base     *objectVersion
	baseSize int64
	have     spans.Set
	changed  spans.Set
	// charged is what the copy counts against the staging limit: the
	// bytes it holds, not its holes. Changed under the file's io.
	charged int64
	// unsure is the token of the last partial save whose answer was an
	// error: S3 may still have committed it, replacing base with this
	// mount's own content (a connection lost after the commit).
	unsure string
}

// wrote records that [off, end) of the staging file was written. The
// file's mu must be held.
func (st *staging) wrote(off, end int64) {
	if st.base == nil {
		return
	}
	end = min(end, st.baseSize)
	st.have.Add(off, end)
	st.changed.Add(off, end)
}

// cut records a truncation to size. The file's mu must be held.
func (st *staging) cut(size int64) {
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
// The file's mu must be held.
func (st *staging) holes(off, end int64) []spans.Span {
	if st.base == nil {
		return nil
	}
	return st.have.Missing(off, min(end, st.baseSize))
}

// rebase makes the object version just saved from the staging copy its
// base: the bytes the copy lacks are that version's now, at the same
// offsets. The file's mu must be held.
func (st *staging) rebase(v objectVersion) {
	if st.base == nil {
		st.have = spans.Set{}
		st.have.Add(0, st.size)
	} else {
		// Bytes past the old base were written here: held, not holes.
		st.have.Add(st.baseSize, st.size)
	}
	st.base, st.baseSize, st.changed, st.unsure = &v, st.size, spans.Set{}, ""
}

// objectVersion names one version of an object.
type objectVersion struct {
	key, etag string
}

// maxFileSize is the largest object S3 stores (5 TiB): a file cannot grow
// past it.
const maxFileSize = 5 << 40

// stageSpace counts the bytes of all staging files against the cache limit.
type stageSpace struct {
	mu    sync.Mutex
	used  int64 // guarded by mu
	limit int64
}

func (s *stageSpace) grow(delta int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if delta > 0 && s.used+delta > s.limit {
		return fmt.Errorf("staging cache full (%d of %d MiB used; raise --cache-size-mib): %w",
			s.used>>20, s.limit>>20, syscall.ENOSPC)
	}
	s.used += delta
	return nil
}

// take charges st for n more bytes it is about to hold, within the limit.
// n.io must be held.
func (n *file) take(st *staging, bytes int64) error {
	if bytes <= 0 {
		return nil
	}
	if err := n.fs.space.grow(bytes); err != nil {
		return err
	}
	st.charged += bytes
	return nil
}

// settle brings st's charge to the bytes it holds now: what it lacks of
// its base is not counted. Bytes fetched to be read or saved are charged
// past the limit if need be (the limit is for what programs write).
// n.io must be held.
func (n *file) settle(st *staging) {
	n.mu.Lock()
	held := st.size
	if st.base != nil {
		held -= st.baseSize - st.have.Len()
	}
	n.mu.Unlock()
	n.fs.space.mu.Lock()
	n.fs.space.used += held - st.charged
	n.fs.space.mu.Unlock()
	st.charged = held
}

func (f *FS) newStaging() (*staging, error) {
	if err := os.MkdirAll(f.opts.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("staging dir: %w", err)
	}
	tmp, err := os.CreateTemp(f.opts.CacheDir, "stage-*")
	if err != nil {
		return nil, fmt.Errorf("staging file: %w", err)
	}
	os.Remove(tmp.Name())
	return &staging{f: tmp}, nil
}

func (f *FS) dropStaging(st *staging) {
	f.stopStream(st)
	f.space.grow(-st.charged)
	st.f.Close()
}

// stage makes sure the file has a staging copy: empty when trunc, else the
// object's current content. Callers must not hold n.mu.
func (n *file) stage(ctx context.Context, trunc bool) error {
	n.io.Lock()
	defer n.io.Unlock()
	n.mu.Lock()
	st, unsaved, known, size, etag := n.st, n.unsaved, n.attr.Meta, n.attr.Size, n.attr.ETag
	n.mu.Unlock()
	if st != nil {
		if trunc {
			return n.resizeLocked(ctx, st, 0)
		}
		return nil
	}
	key := n.key()
	if !unsaved && !known {
		// Rewriting an object must keep its metadata: learn it first.
		o, err := n.fs.b.Head(ctx, key)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err == nil {
			e := n.learnt(o)
			if n.wrongKind(e) {
				return syscall.ESTALE
			}
			size, etag = e.Size, e.ETag
		}
	}
	st, err := n.fs.newStaging()
	if err != nil {
		return err
	}
	if !trunc && !unsaved && size > 0 {
		// A hole until fetched, and not charged until then.
		if err := st.f.Truncate(size); err != nil {
			st.f.Close()
			return fmt.Errorf("staging file: %w", err)
		}
		st.size, st.base, st.baseSize = size, &objectVersion{key: key, etag: etag}, size
	}
	// Truncating an existing object is a change to save; a file created
	// here is unsaved, hence dirty, until its first upload.
	st.dirty = unsaved || (trunc && size > 0) || (trunc && !unsaved)
	st.canStream = trunc || unsaved || size == 0
	n.mu.Lock()
	n.st = st
	n.mu.Unlock()
	return nil
}

// detach fetches every byte the staging copy still lacks and forgets its
// base: the object is about to move or go (rename, unlink), and the copy
// must then stand on its own. n.io must be held.
func (n *file) detach(ctx context.Context, st *staging) error {
	// Not cancelled by a signal (see uncancelled): a rename or unlink
	// waits for this fetch, and must not fail half-way.
	if err := n.fetch(context.WithoutCancel(ctx), st, 0, st.size); err != nil {
		return err
	}
	n.mu.Lock()
	st.base, st.baseSize, st.have, st.changed = nil, 0, spans.Set{}, spans.Set{}
	n.mu.Unlock()
	return nil
}

// fetchBlock is the granularity of fetches into the staging copy: reads
// through a file open for writing fetch at least this much at a time.
const fetchBlock = 4 << 20

// fetch downloads the bytes of [off, end) that the staging copy lacks from
// its base version, in parallel ranges. n.io must be held.
func (n *file) fetch(ctx context.Context, st *staging, off, end int64) error {
	n.mu.Lock()
	holes, base := st.holes(off, end), st.base
	n.mu.Unlock()
	for _, h := range holes {
		err := n.load(ctx, st, base.key, base.etag, h.Off, h.End)
		if errors.Is(err, bucket.ErrPrecondition) {
			own, oerr := n.ownSave(ctx, st)
			if oerr != nil {
				return oerr
			}
			if own {
				return n.fetch(ctx, st, off, end) // from this mount's own save
			}
		}
		if err != nil {
			return err
		}
		n.mu.Lock()
		st.have.Add(h.Off, h.End)
		n.mu.Unlock()
		n.settle(st)
	}
	return nil
}

// load copies bytes [off, end) of the object version key/etag into the
// staging file, in parallel ranges.
func (n *file) load(ctx context.Context, st *staging, key, etag string, off, end int64) error {
	ra := vfs.NewReadAhead(func(ctx context.Context, p []byte, at int64) (int, error) {
		return n.fs.getFull(ctx, key, p, at, etag)
	}, end, n.fs.budget, nil)
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

// resizeLocked truncates or extends the staging file. n.io must be held.
func (n *file) resizeLocked(ctx context.Context, st *staging, size int64) error {
	if size > maxFileSize {
		return fmt.Errorf("size %d past S3's largest object: %w", size, syscall.EFBIG)
	}
	if size < st.streamed {
		n.fs.stopStream(st)
	}
	if err := n.take(st, size-st.size); err != nil {
		return err
	}
	if err := st.f.Truncate(size); err != nil {
		n.settle(st)
		return fmt.Errorf("staging truncate: %w", err)
	}
	if size == 0 {
		// The file can again be uploaded while it is written.
		st.canStream = st.stream == nil
	}
	n.mu.Lock()
	st.cut(size)
	st.size, st.dirty = size, true
	n.attr.Size = size
	n.attr.Touch(true)
	n.mu.Unlock()
	n.settle(st)
	return nil
}

// truncate sets the file's size, staging it if needed.
func (n *file) truncate(ctx context.Context, size int64) error {
	if err := n.stage(ctx, size == 0); err != nil {
		return err
	}
	n.io.Lock()
	defer n.io.Unlock()
	st := n.staged()
	return n.resizeLocked(ctx, st, size)
}

// write stores p at off (at the end when appending) in the staging file.
func (n *file) write(ctx context.Context, p []byte, off int64, appendOnly bool) (int, error) {
	n.io.Lock()
	defer n.io.Unlock()
	st := n.staged()
	if st == nil {
		return 0, errors.New("write to a file not open for writing")
	}
	if appendOnly {
		off = st.size
	}
	if off < st.streamed {
		n.fs.stopStream(st) // a part already sent is being changed
	}
	end := off + int64(len(p))
	if end > maxFileSize {
		return 0, fmt.Errorf("write to %d past S3's largest object: %w", end, syscall.EFBIG)
	}
	// What the copy will hold in addition: past its end, and its holes
	// that the write fills.
	more := max(0, end-st.size)
	n.mu.Lock()
	for _, h := range st.holes(off, end) {
		more += h.End - h.Off
	}
	n.mu.Unlock()
	if err := n.take(st, more); err != nil {
		return 0, err
	}
	w, err := st.f.WriteAt(p, off)
	n.mu.Lock()
	st.wrote(off, off+int64(w))
	if end > st.size {
		st.size = end
	}
	st.dirty = true
	n.attr.Size = st.size
	n.attr.Touch(true)
	n.mu.Unlock()
	if err != nil {
		n.settle(st)
		return w, fmt.Errorf("staging write: %w", err)
	}
	n.streamParts(ctx, st)
	return w, nil
}

// streamParts hands every full part written so far to the upload stream,
// starting it at the first one. A failure to start only means the file is
// uploaded whole at close. n.io must be held.
func (n *file) streamParts(ctx context.Context, st *staging) {
	ps := n.fs.opts.PartSize
	// A part goes once a byte past it is written: a file of exactly one
	// part is then still sent with one PUT at close, as promised.
	if !st.canStream || st.size-st.streamed <= ps {
		return
	}
	if st.stream == nil {
		key := n.key()
		n.mu.Lock()
		md := vfs.ObjectMeta(n.attr, key, true)
		n.mu.Unlock()
		var forget func()
		stream, err := n.fs.b.StartStream(ctx, key, md, bucket.UploadOptions{
			Concurrency: n.fs.opts.UploadConcurrency,
			OnCreate:    func(id string) { forget = n.fs.journal.Add(key, id) },
		})
		if err != nil {
			n.fs.log.Warn("could not start uploading while writing; the file will be uploaded at close", slog.String("path", key), slog.Any("err", err))
			st.canStream = false
			return
		}
		st.stream, st.streamMD, st.forget = stream, md, forget
	}
	for st.size-st.streamed > ps {
		st.parts++
		st.stream.AddPart(st.parts, st.f, st.streamed, ps)
		st.streamed += ps
	}
}

// stopStream abandons a streamed upload (the file will be uploaded whole).
func (f *FS) stopStream(st *staging) {
	st.canStream = false
	if st.stream == nil {
		return
	}
	stream, forget := st.stream, st.forget
	st.stream, st.forget, st.streamed, st.parts = nil, nil, 0, 0
	if err := stream.Abort(context.Background()); err == nil && forget != nil {
		forget()
	}
}

// finishStream sends the last part and completes a streamed upload. ok is
// false when there was no usable stream: then the caller uploads the file
// whole. n.io must be held.
func (n *file) finishStream(ctx context.Context, key string, st *staging, md bucket.Meta) (bucket.Object, bool, error) {
	if st.stream == nil {
		return bucket.Object{}, false, nil
	}
	stream, forget := st.stream, st.forget
	if st.size > st.streamed {
		st.parts++
		stream.AddPart(st.parts, st.f, st.streamed, st.size-st.streamed)
		st.streamed = st.size
	}
	parts := st.parts
	st.stream, st.forget, st.canStream, st.streamed, st.parts = nil, nil, false, 0, 0
	o, err := stream.Complete(ctx, parts, st.size, bucket.UploadOptions{})
	var left *bucket.UploadLeftError
	if forget != nil && !errors.As(err, &left) {
		forget()
	}
	if err != nil {
		// Not lost: the staged data is still here; upload it whole.
		n.fs.log.Warn("streamed upload failed, uploading the file whole", slog.String("path", key), slog.Any("err", err))
		return bucket.Object{}, false, nil
	}
	if !maps.Equal(md.User, st.streamMD.User) {
		// Mode, owner or mtime changed while the file was written.
		o2, err := n.fs.b.Copy(ctx, key, key, &md, o.ETag)
		if err != nil {
			return o, true, err
		}
		o = o2
	}
	return o, true, nil
}

// readStaged serves a read from the staging copy, fetching what it lacks
// of the range first. ok is false when the read should go to S3 instead:
// the file has no staging copy, or the range is wholly bytes the copy
// never held of the version the handle reads (etag), which S3 serves
// through the handle's read-ahead as fast as for a file not being
// written.
func (n *file) readStaged(ctx context.Context, p []byte, off int64, etag string) (int, bool, error) {
	end := off + int64(len(p))
	n.mu.Lock()
	st := n.st
	var size int64
	lacking, untouched := false, false
	if st != nil {
		size = st.size
		holes := st.holes(off, end)
		lacking = len(holes) > 0
		untouched = st.base != nil && st.base.etag == etag && end <= st.baseSize &&
			len(holes) == 1 && holes[0] == spans.Span{Off: off, End: end}
	}
	n.mu.Unlock()
	if st == nil || untouched {
		return 0, false, nil
	}
	if lacking {
		// Whole blocks, so that reading on fetches in large requests.
		from := off / fetchBlock * fetchBlock
		to := (off + int64(len(p)) + fetchBlock - 1) / fetchBlock * fetchBlock
		n.io.Lock()
		err := n.fetch(ctx, st, from, to)
		n.io.Unlock()
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

// save uploads the staged content if it changed, with the file's metadata.
// On success the object in the bucket is exactly the staged bytes; on
// failure the staged data stays for the next save.
func (n *file) save(ctx context.Context) error {
	// Once started, a save is never cut short by a signal to the caller
	// (see uncancelled): close is not retried by programs, and the
	// stream's completion goes to S3 directly, not through n.fs.b.
	ctx = context.WithoutCancel(ctx)
	n.io.Lock()
	defer n.io.Unlock()
	return n.saveHeld(ctx)
}

// saveHeld is save with n.io held.
func (n *file) saveHeld(ctx context.Context) error {
	n.mu.Lock()
	st, deleted, metaDirty := n.st, n.deleted, n.metaDirty
	e := n.attr
	n.mu.Unlock()
	if deleted || st == nil || (!st.dirty && !metaDirty) {
		return nil
	}
	err := n.saveLocked(ctx, st, e)
	n.mu.Lock()
	n.lastErr = err
	n.mu.Unlock()
	if errors.Is(err, errReplacedWhileOpen) || errors.Is(err, errMetaReplaced) {
		// Retrying cannot help: the bytes this copy lacks are gone with
		// the version it was based on. Say so once, loudly, and keep
		// the other program's version.
		n.fs.log.Error("the file was replaced by another program while open for writing here; this mount's changes to it could not be saved and were dropped", slog.String("path", n.lastKeyNow()), slog.Any("err", err))
		n.mu.Lock()
		st.dirty, n.metaDirty = false, false
		idle := n.handles == 0
		if idle {
			// Nothing holds the copy: drop it, so that the next open
			// reads the other program's version.
			n.st, n.checkedAt = nil, time.Time{}
		}
		n.mu.Unlock()
		if idle {
			n.fs.dropStaging(st)
		}
		n.fs.counts.saveFailures.Add(1)
		n.fs.unqueue(n)
		return err
	}
	if err != nil {
		n.fs.counts.saveFailures.Add(1)
		n.fs.retryLater(n, true)
	} else {
		n.fs.counts.saves.Add(1)
		n.fs.unqueue(n)
	}
	return err
}

// saveLocked is save with n.io held and something to save.
func (n *file) saveLocked(ctx context.Context, st *staging, e vfs.Entry) error {
	key, ok := n.saveKey()
	if !ok {
		return errors.New("file has no name left to be saved under")
	}
	if !st.dirty {
		return n.saveMetaLocked(ctx, key)
	}
	md := vfs.ObjectMeta(e, key, true)
	o, streamed, err := n.finishStream(ctx, key, st, md)
	if err != nil {
		return err
	}
	if !streamed {
		if o, err = n.uploadStaged(ctx, key, st, md); err != nil {
			return err
		}
	}
	saved := vfs.SavedEntry(o, md)
	n.mu.Lock()
	st.rebase(objectVersion{key: key, etag: o.ETag})
	st.dirty, n.metaDirty, n.unsaved = false, false, false
	n.attr, n.checkedAt, n.timeGuessed = saved, time.Now(), true
	n.mu.Unlock()
	n.dropKernelAttrs() // the object's time is the file's mtime now
	if p := n.parentDir(); p != nil {
		p.setEntry(baseName(key), &saved)
	}
	return nil
}

// saveMeta stores changed metadata now, unless unsaved content will carry
// it soon anyway.
func (n *file) saveMeta(ctx context.Context) error {
	n.io.Lock()
	defer n.io.Unlock()
	n.mu.Lock()
	pending := n.unsaved || (n.st != nil && n.st.dirty)
	n.mu.Unlock()
	if pending {
		return nil
	}
	key, ok := n.saveKey()
	if !ok {
		return errors.New("file has no name left to be saved under")
	}
	return n.saveMetaLocked(ctx, key)
}

// saveMetaLocked replaces the object's metadata with a copy onto itself.
// n.io must be held.
func (n *file) saveMetaLocked(ctx context.Context, key string) error {
	n.mu.Lock()
	e := n.attr
	n.mu.Unlock()
	md := vfs.ObjectMeta(e, key, false)
	o, err := n.fs.b.Copy(ctx, key, key, &md, e.ETag)
	if errors.Is(err, bucket.ErrPrecondition) {
		o, err = n.metaConflict(ctx, key, md)
	}
	if err != nil {
		return err
	}
	saved := vfs.EntryFromObject(o)
	saved.LinkTarget = e.LinkTarget
	n.mu.Lock()
	if st := n.st; st != nil && st.base != nil && st.base.key == key {
		// The copy onto itself made a new version of the same bytes.
		st.base = &objectVersion{key: key, etag: o.ETag}
	}
	n.metaDirty = false
	n.attr, n.checkedAt = saved, time.Now()
	n.mu.Unlock()
	n.dropKernelAttrs()
	if p := n.parentDir(); p != nil {
		p.setEntry(baseName(key), &saved)
	}
	return nil
}

// errMetaReplaced: a change of metadata (chmod, touch, setfattr) was
// meant for a version of the object that another program replaced.
var errMetaReplaced = fmt.Errorf("the object was replaced by another program; the change of its mode, owner, times or attributes was meant for the version it replaced: %w", syscall.ESTALE)

// metaConflict handles a change of metadata whose copy found another
// version of the object than the node knew. If it carries the metadata
// meant, it is this mount's own copy whose answer was lost. Otherwise
// another program replaced the object: its version and metadata stay, the
// node takes them and the change is dropped, and the operation answers
// ESTALE, after which the kernel looks the name up and retries it once,
// on that version.
func (n *file) metaConflict(ctx context.Context, key string, md bucket.Meta) (bucket.Object, error) {
	o, err := n.fs.b.Head(ctx, key)
	if err != nil {
		return bucket.Object{}, fmt.Errorf("save metadata of %s after a conflict: %w", key, err)
	}
	if sameMetadata(md.User, o.Metadata) {
		return o, nil
	}
	fresh := vfs.EntryFromObject(o)
	n.mu.Lock()
	n.attr, n.checkedAt, n.metaDirty = fresh, time.Now(), false
	n.mu.Unlock()
	n.dropKernelAttrs()
	if p := n.parentDir(); p != nil {
		p.setEntry(baseName(key), &fresh)
	}
	return bucket.Object{}, fmt.Errorf("save metadata of %s: %w", key, errMetaReplaced)
}

// sameMetadata compares user metadata as S3 returns it: keys in lower case.
func sameMetadata(sent, got map[string]string) bool {
	if len(sent) != len(got) {
		return false
	}
	for k, v := range sent {
		if w, ok := got[strings.ToLower(k)]; !ok || w != v {
			return false
		}
	}
	return true
}

// errReplacedWhileOpen: the object a partly fetched staging copy was
// based on changed before the copy could be saved.
var errReplacedWhileOpen = fmt.Errorf("the object changed while open for writing, and the parts of it this mount did not fetch are gone: %w", syscall.ESTALE)

// uploadStaged saves the staging copy as key: only its changed parts, the
// others copied on the server from its base version, when it has a base
// and is larger than a part; else whole. n.io must be held.
func (n *file) uploadStaged(ctx context.Context, key string, st *staging, md bucket.Meta) (bucket.Object, error) {
	n.mu.Lock()
	based := st.base != nil
	n.mu.Unlock()
	partSize := bucket.PartSize(n.fs.opts.PartSize, st.size)
	if based && st.size > partSize {
		o, err := n.savePartial(ctx, key, st, md, partSize)
		if errors.Is(err, bucket.ErrPrecondition) {
			own, oerr := n.ownSave(ctx, st)
			if oerr != nil {
				return o, oerr
			}
			if own {
				o, err = n.savePartial(ctx, key, st, md, partSize)
			}
		}
		// A base changed or gone: what the copy lacks is lost with it.
		if !errors.Is(err, bucket.ErrPrecondition) && !errors.Is(err, iofs.ErrNotExist) {
			return o, err
		}
		n.mu.Lock()
		lacking := len(st.holes(0, st.size)) > 0
		n.mu.Unlock()
		if lacking {
			return o, fmt.Errorf("save %s: %w (%w)", key, errReplacedWhileOpen, err)
		}
		// Every byte is here: saved whole, the last upload wins (as
		// for a file rewritten whole).
	}
	if err := n.fetch(ctx, st, 0, st.size); err != nil {
		if errors.Is(err, bucket.ErrPrecondition) || errors.Is(err, iofs.ErrNotExist) {
			return bucket.Object{}, fmt.Errorf("save %s: %w (%w)", key, errReplacedWhileOpen, err)
		}
		return bucket.Object{}, err
	}
	return n.fs.upload(ctx, key, st, md)
}

// savePartial saves the staging copy as a multipart upload in which the
// unchanged ranges of base are copied on the server, each in as few parts
// as S3 allows (on condition that base is still the object), and only the
// changed ranges are sent, widened to S3's smallest part and after
// fetching the base bytes they lack (see vfs.PartialLayout). Appending a line
// to a large file so costs one copy and the line; a byte in its middle,
// two copies and 5 MiB. n.io must be held.
func (n *file) savePartial(ctx context.Context, key string, st *staging, md bucket.Meta, partSize int64) (bucket.Object, error) {
	n.mu.Lock()
	parts, ok := vfs.PartialLayout(st.size, st.baseSize, st.changed.Spans(), partSize,
		vfs.PartLimits{Min: bucket.MinPartSize, Max: bucket.MaxPartSize, Count: bucket.MaxParts})
	if !ok {
		// More parts than S3 allows (a file of very many scattered
		// changes): parts of partSize, each copied if unchanged.
		parts = parts[:0]
		for off := int64(0); off < st.size; off += partSize {
			end := min(off+partSize, st.size)
			parts = append(parts, vfs.SavePart{Off: off, N: end - off, Copied: end <= st.baseSize && !st.changed.Intersects(off, end)})
		}
	}
	n.mu.Unlock()
	for _, p := range parts {
		if !p.Copied {
			if err := n.fetch(ctx, st, p.Off, p.Off+p.N); err != nil {
				return bucket.Object{}, err
			}
		}
	}
	// Read after the fetches: one may have found the base to be this
	// mount's own lost save and moved to it (ownSave).
	n.mu.Lock()
	base := *st.base
	n.mu.Unlock()
	token := rand.Text()
	md.User = maps.Clone(md.User)
	md.User[vfs.MetaSave] = token
	var forget func()
	stream, err := n.fs.b.StartStream(ctx, key, md, bucket.UploadOptions{
		Concurrency: n.fs.opts.UploadConcurrency,
		OnCreate:    func(id string) { forget = n.fs.journal.Add(key, id) },
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
	o, err := stream.Complete(ctx, len(parts), st.size, bucket.UploadOptions{})
	var left *bucket.UploadLeftError
	if forget != nil && !errors.As(err, &left) {
		forget()
	}
	if err != nil && !errors.Is(err, bucket.ErrPrecondition) {
		n.mu.Lock()
		st.unsure = token
		n.mu.Unlock()
	}
	return o, err
}

// ownSave reports whether the object that replaced the staging copy's
// base is this mount's own last partial save, whose answer was lost; if
// so, that version becomes the base. Its bytes are the file's as they were
// then, at the same offsets, so what the copy lacks is there too; what
// was written since is still marked changed. n.io must be held.
func (n *file) ownSave(ctx context.Context, st *staging) (bool, error) {
	n.mu.Lock()
	token, base := st.unsure, st.base
	n.mu.Unlock()
	if token == "" || base == nil {
		return false, nil
	}
	o, err := n.fs.b.Head(ctx, base.key)
	if errors.Is(err, iofs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		// Cannot tell yet: keep the data and the token for a retry.
		return false, fmt.Errorf("check whether a lost save was stored: %w", err)
	}
	if o.Metadata[vfs.MetaSave] != token {
		return false, nil
	}
	n.mu.Lock()
	st.base, st.unsure = &objectVersion{key: base.key, etag: o.ETag}, ""
	n.mu.Unlock()
	n.fs.log.Info("a save whose answer was lost had been stored; going on from it", slog.String("path", base.key))
	return true, nil
}

// upload writes a staging file as key: one PUT when small, else a
// multipart upload with parallel parts, recorded in the journal while it
// runs so that a crash leaves no incomplete upload behind for long.
func (f *FS) upload(ctx context.Context, key string, st *staging, md bucket.Meta) (bucket.Object, error) {
	if st.size <= f.opts.PartSize {
		return f.b.Put(ctx, key, io.NewSectionReader(st.f, 0, st.size), st.size, md)
	}
	var forget func()
	o, err := f.b.Upload(ctx, key, st.f, st.size, md, bucket.UploadOptions{
		PartSize:    f.opts.PartSize,
		Concurrency: f.opts.UploadConcurrency,
		OnCreate:    func(id string) { forget = f.journal.Add(key, id) },
	})
	// The record goes once the upload is complete or aborted; an upload
	// that could not be aborted keeps it, for the next mount.
	var left *bucket.UploadLeftError
	if forget != nil && !errors.As(err, &left) {
		forget()
	}
	return o, err
}

// release closes a handle: the last one drops a staging copy that holds
// nothing unsaved. Unsaved data (its upload failed) stays and is retried in
// the background until it is saved or the file is deleted.
//
// It waits for a save in progress (the kernel releases a handle after
// close has returned, while rsync is already setting the times by path),
// so what that save stores is not taken for unsaved data. A change made
// but not yet being saved is queued like a failed one, without the error.
func (n *file) release() {
	n.io.Lock()
	defer n.io.Unlock()
	n.mu.Lock()
	n.handles--
	n.fs.counts.handles.Add(-1)
	st := n.st
	last := n.handles == 0
	keep := st != nil && (st.dirty || n.metaDirty) && !n.deleted
	failed := n.lastErr != nil
	if last && st != nil && !keep {
		n.st = nil
	}
	n.mu.Unlock()
	switch {
	case last && st != nil && !keep:
		n.fs.dropStaging(st)
	case last && keep:
		n.saveKey() // remember the name, should the kernel forget the file
		n.fs.retryLater(n, failed)
	}
}

// saveKey returns the key to save the file under: its place in the tree,
// or, once go-fuse dropped it from the tree without it being deleted, the
// last key it had there.
func (n *file) saveKey() (string, bool) {
	if !n.orphaned() {
		key := n.key()
		n.mu.Lock()
		n.lastKey = key
		n.mu.Unlock()
		return key, true
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastKey, n.lastKey != ""
}

// lastKeyNow is the key the file was last known under, for logs.
func (n *file) lastKeyNow() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastKey
}

// orphaned reports whether the file is no longer in the tree: unlinked,
// replaced by a rename, or forgotten by the kernel.
func (n *file) orphaned() bool {
	_, p := n.Parent()
	return p == nil
}

// parentDir is the directory the file is in, if it is still in the tree.
func (n *file) parentDir() *dir { return dirOf(&n.Inode) }

func baseName(key string) string {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return key[i+1:]
		}
	}
	return key
}
