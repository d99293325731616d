package vfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mount-ws/internal/detdata"
)

// fakeObject serves ranges of deterministic content and records requests.
type fakeObject struct {
	src      *detdata.Reader
	mu       sync.Mutex
	requests []int64 // lengths asked for
	failNext atomic.Int32
}

func newFakeObject(size int64) *fakeObject {
	return &fakeObject{src: detdata.New(uint64(size), size)}
}

func (o *fakeObject) fetch(ctx context.Context, p []byte, off int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	o.mu.Lock()
	o.requests = append(o.requests, int64(len(p)))
	o.mu.Unlock()
	if o.failNext.Load() > 0 {
		o.failNext.Add(-1)
		return 0, errors.New("injected fetch failure")
	}
	n, err := o.src.ReadAt(p, off)
	if err == io.EOF && n < len(p) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// readAt fills p from off through r.Read, as io.ReaderAt does.
func readAt(ctx context.Context, r *ReadAhead, p []byte, off int64) (int, error) {
	s, err := r.Read(ctx, off, len(p))
	n := s.CopyTo(p)
	s.Release()
	return n, err
}

func (o *fakeObject) want(off, n int64) []byte {
	b := make([]byte, n)
	m, _ := o.src.ReadAt(b, off)
	return b[:m]
}

func TestReadAheadSequential(t *testing.T) {
	const size = 48<<20 + 12345
	obj := newFakeObject(size)
	b := NewBudget(256 << 20)
	ra := NewReadAhead(obj.fetch, size, b, nil)
	var got bytes.Buffer
	buf := make([]byte, 128<<10)
	for off := int64(0); off < size; {
		n, err := readAt(context.Background(), ra, buf, off)
		if err != nil && err != io.EOF {
			t.Fatalf("read at %d: %v", off, err)
		}
		got.Write(buf[:n])
		off += int64(n)
	}
	if err := detdata.Verify(&got, size, size); err != nil {
		t.Fatal(err)
	}
	ra.Close()
	if now, peak := b.InUse(); now != 0 || peak > maxWindow+2*maxChunk {
		t.Errorf("budget after close: %d in use, peak %d", now, peak)
	}
	var total, biggest int64
	for _, n := range obj.requests {
		total += n
		biggest = max(biggest, n)
	}
	if total != size {
		t.Errorf("fetched %d bytes for a %d-byte sequential read: data fetched twice or skipped", total, size)
	}
	// 48 MiB in 128 KiB reads (385 reads): the window must have grown,
	// so requests are few and large.
	if biggest < maxChunk/2 || len(obj.requests) > 30 {
		t.Errorf("%d requests, the largest %d bytes: the window did not grow", len(obj.requests), biggest)
	}
}

func TestReadAheadConcurrentReordered(t *testing.T) {
	// The kernel sends readahead requests concurrently, slightly out of
	// order; every byte must still be right.
	const size = 40 << 20
	obj := newFakeObject(size)
	ra := NewReadAhead(obj.fetch, size, NewBudget(64<<20), nil)
	defer ra.Close()
	const req = 128 << 10
	var wg sync.WaitGroup
	errs := make(chan error, size/req)
	for base := int64(0); base < size; base += 8 * req {
		offs := []int64{}
		for i := int64(0); i < 8 && base+i*req < size; i++ {
			offs = append(offs, base+i*req)
		}
		rand.Shuffle(len(offs), func(i, j int) { offs[i], offs[j] = offs[j], offs[i] })
		for _, off := range offs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := make([]byte, req)
				n, err := readAt(context.Background(), ra, p, off)
				if err != nil || !bytes.Equal(p[:n], obj.want(off, req)) {
					errs <- errors.New("wrong bytes or error")
				}
			}()
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestReadAheadRandomFetchesSmallBlocks(t *testing.T) {
	const size = 1 << 30
	obj := newFakeObject(size)
	ra := NewReadAhead(obj.fetch, size, NewBudget(64<<20), nil)
	defer ra.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	p := make([]byte, 4096)
	for range 200 {
		off := rng.Int64N(size - 4096)
		n, err := readAt(context.Background(), ra, p, off)
		if err != nil || n != 4096 || !bytes.Equal(p, obj.want(off, 4096)) {
			t.Fatalf("random read at %d: n=%d err=%v", off, n, err)
		}
	}
	var total int64
	for _, n := range obj.requests {
		total += n
	}
	// Each random read costs one aligned block (two when it straddles a
	// boundary); allow a few short sequential bursts by chance.
	if limit := int64(200 * 2 * randomSize); total > limit {
		t.Errorf("200 random 4 KiB reads fetched %d bytes (limit %d)", total, limit)
	}
}

func TestReadAheadBudgetBoundsManyReaders(t *testing.T) {
	// Files large enough that, unbounded, each reader's window (up to
	// maxWindow) would hold far more than the bound checked below: with
	// less data in all than the bound, the check could not fail.
	const readers = 4
	const size = 64 << 20
	const limit = 8 << 20
	b := NewBudget(limit)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			obj := newFakeObject(size + int64(i))
			ra := NewReadAhead(obj.fetch, size+int64(i), b, nil)
			defer ra.Close()
			p := make([]byte, 1<<20)
			for off := int64(0); off < size+int64(i); {
				n, err := readAt(context.Background(), ra, p, off)
				if err != nil && err != io.EOF {
					t.Error(err)
					return
				}
				if !bytes.Equal(p[:n], obj.want(off, int64(n))) {
					t.Errorf("reader %d: wrong bytes at %d", i, off)
					return
				}
				off += int64(n)
			}
		}()
	}
	wg.Wait()
	now, peak := b.InUse()
	// Prefetch stays within the limit; only chunks a reader is waiting on
	// may overdraw it, at most one read's worth per reader.
	if now != 0 || peak > limit+readers*2*maxChunk {
		t.Errorf("budget: %d in use after close, peak %d (limit %d)", now, peak, limit)
	}
}

func TestReadAheadRetriesAfterFailure(t *testing.T) {
	const size = 10 << 20
	obj := newFakeObject(size)
	ra := NewReadAhead(obj.fetch, size, NewBudget(64<<20), nil)
	defer ra.Close()
	obj.failNext.Store(1000) // every fetch of the first window fails
	p := make([]byte, 64<<10)
	if _, err := readAt(context.Background(), ra, p, 0); err == nil {
		t.Fatal("read succeeded while every fetch failed")
	}
	obj.failNext.Store(0)
	n, err := readAt(context.Background(), ra, p, 0)
	if err != nil || !bytes.Equal(p[:n], obj.want(0, int64(len(p)))) {
		t.Fatalf("read after the failure cleared: n=%d err=%v", n, err)
	}
}

func TestReadAheadShortObject(t *testing.T) {
	// The object is shorter than the size it had at open (replaced).
	obj := newFakeObject(1000)
	ra := NewReadAhead(obj.fetch, 5000, NewBudget(1<<20), nil)
	defer ra.Close()
	p := make([]byte, 4096)
	n, err := readAt(context.Background(), ra, p, 0)
	if n != 1000 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("n=%d err=%v, want 1000 bytes and ErrUnexpectedEOF", n, err)
	}
}

func TestReadAheadCloseCancelsFetches(t *testing.T) {
	started := make(chan struct{}, 16)
	stuck := func(ctx context.Context, p []byte, off int64) (int, error) {
		started <- struct{}{}
		<-ctx.Done()
		return 0, ctx.Err()
	}
	ra := NewReadAhead(stuck, 100<<20, NewBudget(64<<20), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := readAt(ctx, ra, make([]byte, 4096), 0); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read of a stuck object: %v, want the caller's deadline", err)
	}
	<-started
	done := make(chan struct{})
	go func() { ra.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not cancel the running fetches")
	}
}

func TestSpanOutlivesItsChunk(t *testing.T) {
	// A Span handed to the kernel keeps its buffers while the window moves
	// on, drops its chunks and recycles buffers for new fetches.
	const size = 64 << 20
	obj := newFakeObject(size)
	ra := NewReadAhead(obj.fetch, size, NewBudget(size), nil)
	defer ra.Close()
	ctx := context.Background()
	held, err := ra.Read(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// Stream the rest (its chunks are dropped behind the reader and their
	// buffers reused), then jump, which drops the whole window.
	buf := make([]byte, 1<<20)
	for off := int64(1 << 20); off < size; off += int64(len(buf)) {
		if _, err := readAt(ctx, ra, buf, off); err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	for _, off := range []int64{7 << 20, 3 << 20, 0} {
		if _, err := readAt(ctx, ra, buf, off); err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	got := make([]byte, held.Len())
	got = got[:held.CopyTo(got)]
	if !bytes.Equal(got, obj.want(0, 1<<20)) {
		t.Fatal("a held span's bytes changed after its chunk was dropped")
	}
	held.Release()
	held.Release() // twice is harmless
	if held.Len() != 0 || held.Parts() != nil {
		t.Error("a released span still has data")
	}
}

func TestReadAheadRecyclesBuffers(t *testing.T) {
	// Streaming through fresh buffers made the FUSE process zero and
	// fault in every byte twice; the budget's pool recycles them.
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop a share of what it is given")
	}
	const size = 256 << 20
	obj := newFakeObject(size)
	b := NewBudget(128 << 20)
	ctx := context.Background()
	// A collection empties sync.Pool (within two): none during the count.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 2 { // the second reader reuses the first one's buffers
		ra := NewReadAhead(obj.fetch, size, b, nil)
		for off := int64(0); off < size; off += 1 << 20 {
			s, err := ra.Read(ctx, off, 1<<20)
			if err != nil || s.Len() != 1<<20 {
				t.Fatalf("read at %d: %d bytes, %v", off, s.Len(), err)
			}
			s.Release()
		}
		ra.Close()
	}
	runtime.ReadMemStats(&after)
	// The window holds at most maxWindow plus the chunks in flight; what
	// is allocated beyond that is the pool's misses.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2*maxWindow {
		t.Errorf("reading %d MiB twice allocated %d MiB: buffers are not recycled", size>>20, alloc>>20)
	}
}

func TestSpanDirectRead(t *testing.T) {
	// A random read is served from one pooled block, returned whole or
	// cut to the object's end.
	const size = 10<<20 + 100
	obj := newFakeObject(size)
	ra := NewReadAhead(obj.fetch, size, NewBudget(size), nil)
	defer ra.Close()
	for _, tc := range []struct {
		off  int64
		n    int
		want int
		err  error
	}{
		{off: 5 << 20, n: 4096, want: 4096},
		{off: 3<<20 + 17, n: 1 << 20, want: 1 << 20},
		{off: size - 50, n: 4096, want: 50}, // short at the end, no error
		{off: size, n: 10, want: 0, err: io.EOF},
	} {
		s, err := ra.Read(context.Background(), tc.off, tc.n)
		got := make([]byte, s.Len())
		s.CopyTo(got)
		s.Release()
		if s.Len() != 0 || len(got) != tc.want || !errors.Is(err, tc.err) || !bytes.Equal(got, obj.want(tc.off, int64(tc.want))) {
			t.Errorf("Read(%d, %d): %d bytes, %v; want %d, %v", tc.off, tc.n, len(got), err, tc.want, tc.err)
		}
	}
}
