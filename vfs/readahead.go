package vfs

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// Read-ahead tuning. After a reader has read X bytes in a row, the next
// 2X bytes (at least minWindow, at most maxWindow) are fetched ahead, in
// ranged GETs of up to maxChunk running in parallel: a full window keeps
// maxWindow/maxChunk GETs in flight.
const (
	minWindow  = 1 << 20
	maxWindow  = 64 << 20
	minChunk   = 1 << 20
	maxChunk   = 8 << 20
	randomSize = 128 << 10 // a random read fetches this aligned block
	// seqSlack is how far from the stream position a read may land and
	// still count as sequential: the kernel issues readahead requests
	// concurrently, so they arrive slightly out of order.
	seqSlack = 4 << 20
)

// HitCounts counts reads served from fetched data (Hits) and reads that
// waited for the storage (Misses), across readers.
type HitCounts struct {
	Hits, Misses atomic.Uint64
}

// FetchFunc reads len(p) bytes at off into p; fewer only at the end of the
// object, with io.EOF or io.ErrUnexpectedEOF.
type FetchFunc func(ctx context.Context, p []byte, off int64) (int, error)

// chunk is one ranged GET of the window, filled in the background. Its
// buffer comes from the budget's pool and goes back when the last holder
// lets go: the window while the chunk is in it, the fetch while it runs,
// and each Span that returned its data.
type chunk struct {
	off, n int64
	done   chan struct{} // closed when data and err are set
	data   []byte
	err    error
	buf    *[]byte // behind data; set before done is closed
	refs   int     // holders; guarded by the ReadAhead's mu
}

// ReadAhead serves reads of one open file. It is safe for concurrent use:
// the kernel sends concurrent reads for one handle.
type ReadAhead struct {
	fetch  FetchFunc
	size   int64
	budget *Budget
	counts *HitCounts      // hits and misses; nil counts nothing
	ctx    context.Context // cancelled by close; bounds every background fetch
	cancel context.CancelFunc
	wg     sync.WaitGroup // background fetches

	mu       sync.Mutex
	chunks   []*chunk // sorted by off, contiguous up to frontier; guarded by mu
	frontier int64    // end of the last chunk started; guarded by mu
	runStart int64    // where the current sequential run began; guarded by mu
	pos      int64    // end of the furthest read so far; guarded by mu
	random   bool     // the last read was not sequential; guarded by mu
	closed   bool     // guarded by mu
}

// NewReadAhead returns the reader of an object of size bytes, read with
// fetch, its buffers taken from b, its hits and misses counted in c (nil
// counts nothing). Close it when done.
func NewReadAhead(fetch FetchFunc, size int64, b *Budget, c *HitCounts) *ReadAhead {
	ctx, cancel := context.WithCancel(context.Background())
	return &ReadAhead{fetch: fetch, size: size, budget: b, counts: c, ctx: ctx, cancel: cancel}
}

// Read returns the n bytes at off as a Span of fetched buffers, without
// copying them; fewer only at EOF, with io.EOF or io.ErrUnexpectedEOF,
// or on error. Release the Span when done with its data.
func (r *ReadAhead) Read(ctx context.Context, off int64, n int) (*Span, error) {
	if off >= r.size {
		return &Span{}, io.EOF
	}
	end := off + min(int64(n), r.size-off)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return &Span{}, errors.New("read after close")
	}
	if off < r.pos-seqSlack || off > r.pos+seqSlack {
		// A jump: fetch only what is asked, and start a new run here.
		r.random = true
		r.dropLocked(func(*chunk) bool { return true })
		r.runStart, r.frontier, r.pos = end, end, end
		r.mu.Unlock()
		r.count(false)
		return r.readDirect(ctx, off, end)
	}
	if r.random {
		r.random = false
		r.runStart, r.frontier = off, off
	}
	r.pos = max(r.pos, end)
	r.dropLocked(func(c *chunk) bool { return c.off+c.n <= off-seqSlack })
	r.scheduleLocked(off, end)
	need, covered := r.coveringLocked(off, end)
	if covered {
		for _, c := range need {
			c.refs++ // the Span's
		}
	}
	r.mu.Unlock()
	if !covered {
		r.count(false)
		return r.readDirect(ctx, off, end) // a read behind the window
	}
	r.count(fetched(need))

	s := &Span{r: r, held: need}
	at := off
	for _, c := range need {
		select {
		case <-c.done:
		case <-ctx.Done():
			return s, ctx.Err()
		}
		if c.err != nil {
			r.forget(c) // so that the next read tries again
			return s, c.err
		}
		start := at - c.off
		if start >= int64(len(c.data)) {
			break // the object was shorter than its size said
		}
		part := c.data[start:min(int64(len(c.data)), end-c.off)]
		s.add(part)
		at += int64(len(part))
		if int64(len(c.data)) < c.n {
			break // short: the object ends here, whatever its size said
		}
	}
	if at < end {
		return s, io.ErrUnexpectedEOF
	}
	return s, nil
}

// fetched reports whether every chunk's data has arrived.
func fetched(chunks []*chunk) bool {
	for _, c := range chunks {
		select {
		case <-c.done:
		default:
			return false
		}
	}
	return true
}

// count records a read served from fetched data (hit) or not.
func (r *ReadAhead) count(hit bool) {
	switch {
	case r.counts == nil:
	case hit:
		r.counts.Hits.Add(1)
	default:
		r.counts.Misses.Add(1)
	}
}

// readDirect fetches just the aligned block around [off, end).
func (r *ReadAhead) readDirect(ctx context.Context, off, end int64) (*Span, error) {
	start := off / randomSize * randomSize
	blockEnd := min(r.size, (end+randomSize-1)/randomSize*randomSize)
	buf := r.budget.pool.get(int(blockEnd - start))
	s := &Span{direct: buf, pool: &r.budget.pool}
	got, err := r.fetch(ctx, *buf, start)
	skip := off - start
	if int64(got) <= skip {
		return s, orUnexpectedEOF(err)
	}
	s.add((*buf)[skip:min(int64(got), end-start)])
	if int64(s.Len()) < end-off {
		return s, orUnexpectedEOF(err)
	}
	return s, nil
}

func orUnexpectedEOF(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// scheduleLocked starts the GETs that cover [from, to) and the window after
// it. What the reader needs now is charged to the budget even when that is
// spent; read-ahead beyond it only while the budget lasts.
func (r *ReadAhead) scheduleLocked(from, to int64) {
	if r.frontier < from {
		r.frontier = from // the reader skipped ahead a little
	}
	window := min(maxWindow, max(minWindow, 2*(to-r.runStart)))
	limit := min(r.size, to+window)
	// Whole MiB, rounded up: a data cache keeps 1 MiB blocks, and a
	// chunk ending inside one would have it fetched again by the next.
	chunkLen := min(maxChunk, (max(minChunk, window/4)+minChunk-1)&^(minChunk-1))
	for r.frontier < limit {
		n := min(chunkLen, r.size-r.frontier)
		if !r.budget.take(bufCharge(n), r.frontier < to) {
			return
		}
		r.startLocked(r.frontier, n)
		r.frontier += n
	}
}

func (r *ReadAhead) startLocked(off, n int64) {
	c := &chunk{off: off, n: n, done: make(chan struct{}), refs: 2} // the window's and the fetch's
	r.chunks = append(r.chunks, c)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := r.budget.pool.get(int(n))
		got, err := r.fetch(r.ctx, *buf, off)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			c.err = err
		} else {
			c.data = (*buf)[:got]
		}
		c.buf = buf
		close(c.done)
		r.unref(c)
	}()
}

// unref lets go of one hold on c, and recycles its buffer after the last.
func (r *ReadAhead) unref(c *chunk) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unrefLocked(c)
}

func (r *ReadAhead) unrefLocked(c *chunk) {
	c.refs--
	if c.refs == 0 && c.buf != nil {
		r.budget.pool.put(c.buf)
		c.buf, c.data = nil, nil
	}
}

// coveringLocked returns the chunks that hold [from, to), in order, and
// whether they cover all of it.
func (r *ReadAhead) coveringLocked(from, to int64) ([]*chunk, bool) {
	var out []*chunk
	next := from
	for _, c := range r.chunks {
		if c.off+c.n <= from || c.off >= to {
			continue
		}
		if c.off > next {
			return nil, false
		}
		out = append(out, c)
		next = c.off + c.n
	}
	return out, next >= to
}

// forget drops one failed chunk and everything after it, so the window is
// fetched again from there.
func (r *ReadAhead) forget(failed *chunk) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropLocked(func(c *chunk) bool { return c.off >= failed.off })
	if r.frontier > failed.off {
		r.frontier = failed.off
	}
}

// dropLocked forgets the chunks for which drop is true and returns their
// bytes to the budget. A fetch still running, or a Span holding the data,
// keeps the buffer until it is done.
func (r *ReadAhead) dropLocked(drop func(*chunk) bool) {
	kept := r.chunks[:0]
	for _, c := range r.chunks {
		if drop(c) {
			r.budget.give(bufCharge(c.n))
			r.unrefLocked(c)
			continue
		}
		kept = append(kept, c)
	}
	clear(r.chunks[len(kept):])
	r.chunks = kept
}

// Close cancels outstanding fetches, waits for them and returns the
// budget. Reads after Close fail.
func (r *ReadAhead) Close() {
	r.mu.Lock()
	r.closed = true
	r.dropLocked(func(*chunk) bool { return true })
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// Span is the data of one read: parts of fetched buffers, valid until
// Release, after which the buffers are reused.
type Span struct {
	parts  [][]byte
	n      int
	r      *ReadAhead // owner of held
	held   []*chunk   // chunks the parts come from
	direct *[]byte    // or the one buffer of a direct read, from pool
	pool   *bufPool
}

func (s *Span) add(p []byte) {
	if len(p) > 0 {
		s.parts = append(s.parts, p)
		s.n += len(p)
	}
}

// Len returns the number of bytes in the span.
func (s *Span) Len() int { return s.n }

// Parts returns the data, in order.
func (s *Span) Parts() [][]byte { return s.parts }

// CopyTo copies the data into p and returns the count.
func (s *Span) CopyTo(p []byte) int {
	n := 0
	for _, part := range s.parts {
		n += copy(p[n:], part)
	}
	return n
}

// Release gives the buffers back. The parts must not be used after it;
// a second Release does nothing.
func (s *Span) Release() {
	s.parts, s.n = nil, 0
	if s.direct != nil {
		s.pool.put(s.direct)
		s.direct = nil
	}
	if s.held != nil {
		s.r.mu.Lock()
		for _, c := range s.held {
			s.r.unrefLocked(c)
		}
		s.r.mu.Unlock()
		s.held = nil
	}
}
