package creds

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mount-ws/internal/wsstack"
)

// fleetCall is one request a fleet member sent to the workspace API: when
// it was sent, when its answer (or error) came, and the status of the
// answer (0: none).
type fleetCall struct {
	at, done time.Time
	status   int
}

// fleet is many Providers of the shared stack's workspace in one process,
// as many mounts on many machines would be: each has its own HTTP
// transport (so its own connections), and every request they send is
// recorded with its send time.
type fleet struct {
	ps      []*Provider
	booted  time.Time     // when the last member got its first credentials
	spread  time.Duration // from the first member's first credentials to the last's
	logs    *levelCounter
	stale   []time.Time // each member's first unjittered refresh point (entry.staleAt)
	planned []time.Time // each member's first scheduled (jittered) refresh (entry.refreshAt)
	due     time.Time   // the earliest first refresh point of the fleet (entry.refreshAt)

	mu    sync.Mutex
	calls [][]fleetCall // guarded by mu: by member, in sending order
	boot  []int         // guarded by mu: how many of calls[i] NewProvider made
}

// recordingTransport records every request of fleet member i.
type recordingTransport struct {
	rt http.RoundTripper
	f  *fleet
	i  int
}

func (r recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	at := time.Now()
	resp, err := r.rt.RoundTrip(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
	}
	r.f.mu.Lock()
	r.f.calls[r.i] = append(r.f.calls[r.i], fleetCall{at: at, done: time.Now(), status: status})
	r.f.mu.Unlock()
	return resp, err
}

// startFleet boots n providers against s as a fleet booting together: the
// API holds every request arriving in the next hang and then answers them
// all at once, so the members get their first credentials within a
// fraction of a second of each other (the worst case for the spread of
// their refreshes). The fleet is closed when the test ends.
func startFleet(t *testing.T, s *wsstack.Stack, n int, hang time.Duration) *fleet {
	t.Helper()
	f := &fleet{
		ps:    make([]*Provider, n),
		logs:  &levelCounter{},
		calls: make([][]fleetCall, n),
		boot:  make([]int, n),
	}
	logger := slog.New(f.logs)
	var transports []*http.Transport
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, p := range f.ps {
			if p != nil {
				wg.Go(func() { p.Close() })
			}
		}
		wg.Wait()
		for _, tr := range transports {
			tr.CloseIdleConnections()
		}
	})

	s.API.HangFor(hang)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := stackConfig(s, stackWS, testToken)
		cfg.Logger = logger
		// Generous bounds: 1,000 boots at once on 2 cores under -race,
		// beside another package's tests, can take seconds past the hang.
		cfg.RequestTimeout = hang + DefaultRequestTimeout
		cfg.MountRetryBound = 2 * cfg.RequestTimeout
		tr := newHTTPClient(cfg.RequestTimeout).Transport.(*http.Transport)
		transports = append(transports, tr)
		cfg.HTTPClient = &http.Client{Transport: recordingTransport{rt: tr, f: f, i: i}}
		wg.Go(func() {
			p, err := NewProvider(context.Background(), cfg)
			f.mu.Lock()
			f.ps[i], errs[i], f.boot[i] = p, err, len(f.calls[i])
			f.mu.Unlock()
		})
	}
	wg.Wait()
	var first time.Time
	for i, p := range f.ps {
		if errs[i] != nil {
			t.Fatalf("member %d: %v", i, errs[i])
		}
		at := p.Stats().LastRefresh
		p.mu.Lock()
		f.stale = append(f.stale, p.cur.staleAt)
		f.planned = append(f.planned, p.cur.refreshAt)
		if f.due.IsZero() || p.cur.refreshAt.Before(f.due) {
			f.due = p.cur.refreshAt
		}
		p.mu.Unlock()
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(f.booted) {
			f.booted = at
		}
	}
	f.spread = f.booted.Sub(first)
	return f
}

// refreshCalls returns a copy of the requests each member's background
// loop has sent so far (the boot fetch left out).
func (f *fleet) refreshCalls() [][]fleetCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]fleetCall, len(f.calls))
	for i, c := range f.calls {
		out[i] = slices.Clone(c[f.boot[i]:])
	}
	return out
}

// stats returns every member's Stats.
func (f *fleet) stats() []Stats {
	out := make([]Stats, len(f.ps))
	for i, p := range f.ps {
		out[i] = p.Stats()
	}
	return out
}

// await polls cond every 100 ms until it holds, failing the test after
// limit. The fleet signals nothing a test could wait on as a whole, and a
// coarse poll keeps 1,000 Stats calls from eating the CPU the fleet needs.
func (f *fleet) await(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			failing := 0
			var last error
			for _, st := range f.stats() {
				if st.Failing {
					failing, last = failing+1, st.LastError
				}
			}
			t.Fatalf("not within %v: %s (%d members failing; the last error: %v)", limit, what, failing, last)
		}
	}
}

// sampler calls Retrieve on every member, as file operations would, from
// several goroutines until stopped, and counts the calls that failed or
// returned credentials already expired.
type sampler struct {
	calls, failed atomic.Int64
	stop          chan struct{}
	wg            sync.WaitGroup

	mu       sync.Mutex
	firstErr error // guarded by mu
}

// startSampler starts workers goroutines that each Retrieve from their
// share of the fleet's members, one pass every period.
func (f *fleet) startSampler(workers int, period time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{})}
	for w := range workers {
		s.wg.Go(func() {
			tick := time.NewTicker(period)
			defer tick.Stop()
			for {
				for i := w; i < len(f.ps); i += workers {
					c, err := f.ps[i].Retrieve(context.Background())
					if err == nil && !c.Expires.After(time.Now()) {
						err = fmt.Errorf("member %d: Retrieve returned credentials that expired at %v", i, c.Expires)
					}
					s.calls.Add(1)
					if err != nil {
						s.failed.Add(1)
						s.mu.Lock()
						s.firstErr = cmp.Or(s.firstErr, err)
						s.mu.Unlock()
					}
				}
				select {
				case <-s.stop:
					return
				case <-tick.C:
				}
			}
		})
	}
	return s
}

// end stops the sampler and waits for its goroutines.
func (s *sampler) end() {
	close(s.stop)
	s.wg.Wait()
}

// levelCounter is a slog.Handler that only counts the records at Warn and
// above, by message: 1,000 providers logging in full would be most of the
// test's work.
type levelCounter struct {
	mu     sync.Mutex
	counts map[string]int // guarded by mu
}

func (h *levelCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *levelCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.counts == nil {
		h.counts = map[string]int{}
	}
	h.counts[r.Level.String()+" "+r.Message]++
	return nil
}

func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelCounter) WithGroup(string) slog.Handler      { return h }

// count returns how many records at level l were logged.
func (h *levelCounter) count(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for k, v := range h.counts {
		if strings.HasPrefix(k, l.String()+" ") {
			n += v
		}
	}
	return n
}

// String lists the counted messages.
func (h *levelCounter) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var lines []string
	for k, v := range h.counts {
		lines = append(lines, fmt.Sprintf("%6d × %s", v, k))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// histogram counts times into buckets of width w from origin.
func histogram(times []time.Time, origin time.Time, w time.Duration) []int {
	var h []int
	for _, at := range times {
		b := int(at.Sub(origin) / w)
		if b < 0 {
			b = 0
		}
		for len(h) <= b {
			h = append(h, 0)
		}
		h[b]++
	}
	return h
}

// drawHistogram renders h as one line per bucket, from its first non-empty
// bucket to its last, labelled with the bucket's start after origin.
func drawHistogram(h []int, w time.Duration, scale int) string {
	lo, hi := len(h), -1
	for i, n := range h {
		if n > 0 {
			lo, hi = min(lo, i), i
		}
	}
	var b strings.Builder
	for i := lo; i <= hi; i++ {
		fmt.Fprintf(&b, "%6.1fs %4d %s\n", (time.Duration(i) * w).Seconds(), h[i], strings.Repeat("#", h[i]/scale))
	}
	return b.String()
}

// err returns the first failure seen, or nil.
func (s *sampler) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstErr
}
