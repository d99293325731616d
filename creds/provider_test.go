package creds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fastBackoff makes background retries quick for tests.
func fastBackoff(p *Provider) {
	p.backoffBase = 20 * time.Millisecond
	p.backoffMax = 100 * time.Millisecond
}

// startProvider starts a Provider with fastBackoff and then tunes, and
// closes it at the end of the test.
func startProvider(t *testing.T, cfg Config, tunes ...func(*Provider)) *Provider {
	t.Helper()
	p, err := newProvider(context.Background(), cfg, func(p *Provider) {
		fastBackoff(p)
		for _, tune := range tunes {
			tune(p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func TestProviderRetrieve(t *testing.T) {
	api := newFakeAPI(t)
	p := startProvider(t, testConfig(api, nil))
	c, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !c.CanExpire || c.Expires.IsZero() || c.AccessKeyID != "AKIATEST00000001" || c.SecretAccessKey != testSecret || c.SessionToken != testSession {
		t.Errorf("credentials = %+v", c)
	}
	if c.Source != ProviderSource {
		t.Errorf("source = %q", c.Source)
	}
	if s := p.Scope(); s.Bucket != "ws-bucket" || s.Prefix != "acme/data/" {
		t.Errorf("scope = %+v", s)
	}
}

// Requests never wait while valid credentials exist, and the API sees one
// refresh per refresh interval, not one per request. The API answers slowly,
// so a Retrieve that waited on it would show.
func TestProviderRefreshAhead(t *testing.T) {
	api := newFakeAPI(t)
	const ttl, apiDelay = 2 * time.Second, 300 * time.Millisecond
	api.ttl.Store(int64(ttl))
	p := startProvider(t, testConfig(api, nil))
	api.setRespond(func(http.ResponseWriter, int64) bool {
		time.Sleep(apiDelay)
		return false
	})

	const run = 4 * time.Second
	var calls atomic.Int64
	keys := sync.Map{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for end := time.Now().Add(run); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
				c, err := p.Retrieve(context.Background())
				if err != nil {
					t.Errorf("Retrieve: %v", err)
					return
				}
				if !time.Now().Before(c.Expires) {
					t.Errorf("handed out expired credentials")
				}
				keys.Store(c.AccessKeyID, true)
				calls.Add(1)
			}
		})
	}
	wg.Wait()
	// Refresh every 1.0–1.2 s (window L/2, plus up to 20% jitter: never
	// before half the lifetime), plus the API's delay: about 3 in 4 s.
	// The bounds are loose on purpose (a loaded machine delays the loop);
	// what they rule out is no refresh at all, or one per request (there
	// were thousands).
	reqs := api.requests.Load()
	if reqs < 2 || reqs > 6 {
		t.Errorf("%d API requests in %v with TTL %v for %d Retrieve calls, want about 3", reqs, run, ttl, calls.Load())
	}
	// Not timed: the provider counts the calls that had to wait.
	if st := p.Stats(); st.Waits > 0 {
		t.Errorf("%d of %d Retrieve calls waited for the API", st.Waits, calls.Load())
	}
	n := 0
	keys.Range(func(any, any) bool { n++; return true })
	if n < 2 {
		t.Errorf("only %d distinct keys used", n)
	}
	if st := p.Stats(); st.Refreshes < uint64(reqs)-1 || st.Failing || st.TimeToExpiry <= 0 {
		t.Errorf("stats = %+v, requests %d", st, reqs)
	}
}

// While the held credentials are valid, Retrieve answers at once even when
// their refresh is stuck at the API. Not timed: the refresh is held until
// the test ends, so a Retrieve that waits for it returns only when its
// context does.
func TestProviderRetrieveDuringHeldRefresh(t *testing.T) {
	api := newFakeAPI(t)
	clock := &offsetClock{}
	api.setNow(clock.Now)
	cfg := testConfig(api, nil)
	cfg.Clock = clock
	cfg.RequestTimeout = time.Minute // the refresh stays held, not timed out
	p := startProvider(t, cfg)
	held, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	api.setRespond(func(http.ResponseWriter, int64) bool {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-release
		return false
	})
	t.Cleanup(func() { close(release) }) // runs before the provider's Close

	// Into the refresh window, 10 minutes before expiry.
	clock.jump(50 * time.Minute)
	retrieve := func(when string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := p.Retrieve(ctx)
		if err != nil || ctx.Err() != nil || c.AccessKeyID != held.AccessKeyID {
			t.Errorf("%s: Retrieve = %s, %v (context: %v); want the held credentials at once", when, c.AccessKeyID, err, ctx.Err())
		}
	}
	retrieve("at the refresh point")
	<-arrived
	retrieve("while the refresh is held at the API")
}

func TestProviderSingleFlight(t *testing.T) {
	api := newFakeAPI(t)
	var slowAPI atomic.Bool
	api.setRespond(func(w http.ResponseWriter, n int64) bool {
		if slowAPI.Load() {
			time.Sleep(200 * time.Millisecond)
		}
		return false
	})
	p := startProvider(t, testConfig(api, nil))
	first, _ := p.Retrieve(context.Background())
	slowAPI.Store(true)
	p.Invalidate(first.AccessKeyID)
	p.Invalidate(first.AccessKeyID) // a second rejection of the same key changes nothing

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			c, err := p.Retrieve(context.Background())
			if err != nil || c.AccessKeyID == first.AccessKeyID {
				t.Errorf("Retrieve = %v, %v", c.AccessKeyID, err)
			}
		})
	}
	wg.Wait()
	if n := api.requests.Load(); n != 2 {
		t.Errorf("%d API requests, want 2 (initial + one refresh)", n)
	}
	if st := p.Stats(); st.Invalidations != 1 || st.Refreshes != 2 {
		t.Errorf("stats = %+v", st)
	}
	// Invalidating a key that is not held is a no-op.
	p.Invalidate(first.AccessKeyID)
	p.Invalidate("AKIAUNKNOWN")
	if c, _ := p.Retrieve(context.Background()); c.AccessKeyID != "AKIATEST00000002" {
		t.Errorf("key = %s", c.AccessKeyID)
	}
	if n := api.requests.Load(); n != 2 {
		t.Errorf("%d API requests after no-op invalidations", n)
	}
}

// The API is down longer than one TTL: requests fail only while no valid
// credentials exist, the outage is logged once, and the provider recovers
// by itself.
func TestProviderOutageAndRecovery(t *testing.T) {
	api := newFakeAPI(t)
	const ttl = time.Second
	api.ttl.Store(int64(ttl))
	var down atomic.Bool
	api.setRespond(func(w http.ResponseWriter, _ int64) bool {
		if !down.Load() {
			return false
		}
		writeEnvelope(w, 503, "unavailable", "maintenance "+testToken)
		return true
	})
	logger, logs := newLogger()
	cfg := testConfig(api, logger)
	cfg.ExpiredWaitBound = 100 * time.Millisecond
	p := startProvider(t, cfg)
	first, _ := p.Retrieve(context.Background())

	down.Store(true)
	outageStart := time.Now()
	var lastFail, firstFail time.Time
	var errs []error
	recovered := time.Time{}
	upAt := outageStart.Add(2500 * time.Millisecond)
	for end := outageStart.Add(4 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if down.Load() && time.Now().After(upAt) {
			down.Store(false)
		}
		c, err := p.Retrieve(context.Background())
		now := time.Now()
		if err != nil {
			if firstFail.IsZero() {
				firstFail = now
			}
			lastFail = now
			errs = append(errs, err)
			continue
		}
		if now.After(c.Expires) {
			t.Fatalf("expired credentials handed out")
		}
		if recovered.IsZero() && c.AccessKeyID != first.AccessKeyID && !down.Load() {
			recovered = now
		}
	}
	if firstFail.IsZero() {
		t.Fatal("no failure during an outage longer than the TTL")
	}
	// Failures start only once the held credentials stop being valid...
	if firstFail.Before(first.Expires.Add(-ttl / 5)) {
		t.Errorf("first failure at %v, credentials valid until %v", firstFail, first.Expires)
	}
	// ...and end soon after the API is back.
	if lastFail.After(upAt.Add(time.Second)) {
		t.Errorf("still failing %v after the API came back", lastFail.Sub(upAt))
	}
	if recovered.IsZero() {
		t.Fatal("never recovered")
	}
	for _, err := range errs {
		if !errors.Is(err, ErrExpired) || !errors.Is(err, ErrUnavailable) {
			t.Errorf("err = %v, want ErrExpired wrapping ErrUnavailable", err)
		}
		assertNoSecrets(t, "error", err.Error())
	}
	if n := logs.count("cannot be refreshed"); n != 1 {
		t.Errorf("%d outage lines, want 1", n)
	}
	if n := logs.count("credential refresh failed; still using"); n != 1 {
		t.Errorf("%d 'refresh failed' lines, want 1", n)
	}
	if n := logs.count("credential refresh recovered"); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
	st := p.Stats()
	if st.Failures[FailureUnavailable] == 0 || st.Failing {
		t.Errorf("stats = %+v", st)
	}
	assertNoSecrets(t, "logs", logs.String())
}

func TestProviderScopeChangeRejected(t *testing.T) {
	api := newFakeAPI(t)
	api.ttl.Store(int64(1200 * time.Millisecond))
	logger, logs := newLogger()
	cfg := testConfig(api, logger)
	cfg.ExpiredWaitBound = 100 * time.Millisecond
	p := startProvider(t, cfg)
	first, _ := p.Retrieve(context.Background())
	pinned := p.Scope()

	for _, s := range []Scope{
		{Bucket: "other-bucket", Prefix: pinned.Prefix, Endpoint: pinned.Endpoint, Region: pinned.Region},
		{Bucket: pinned.Bucket, Prefix: "acme/other/", Endpoint: pinned.Endpoint, Region: pinned.Region},
	} {
		api.setScope(s)
		p.Invalidate(first.AccessKeyID) // force a refresh now
		_, err := p.Retrieve(context.Background())
		if !errors.Is(err, ErrExpired) || !errors.Is(err, ErrScopeChanged) {
			t.Errorf("scope %v: err = %v, want ErrExpired wrapping ErrScopeChanged", s, err)
		}
		if p.Scope() != pinned {
			t.Errorf("scope changed to %+v", p.Scope())
		}
		if st := p.Stats(); st.Failures[FailureScopeChanged] == 0 {
			t.Errorf("stats = %+v", st)
		}
		api.setScope(pinned)
		deadline := time.Now().Add(2 * time.Second)
		for {
			c, err := p.Retrieve(context.Background())
			if err == nil {
				first = c
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no recovery: %v", err)
			}
		}
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "other-bucket") {
		t.Errorf("scope change not logged as an error:\n%s", logs)
	}
}

// Credentials that stay valid are kept while a refresh names another bucket.
func TestProviderScopeChangeKeepsValidCredentials(t *testing.T) {
	api := newFakeAPI(t)
	api.ttl.Store(int64(2 * time.Second))
	p := startProvider(t, testConfig(api, nil))
	first, _ := p.Retrieve(context.Background())
	s := p.Scope()
	s.Bucket = "moved-bucket"
	api.setScope(s)
	for time.Now().Before(first.Expires.Add(-400 * time.Millisecond)) {
		c, err := p.Retrieve(context.Background())
		if err != nil || c.AccessKeyID != first.AccessKeyID {
			t.Fatalf("Retrieve = %s, %v; want the held credentials", c.AccessKeyID, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := p.Stats(); st.Failures[FailureScopeChanged] == 0 {
		t.Errorf("no scope-change failure counted: %+v", st)
	}
}

// An endpoint or region change is accepted with one warning; the pinned
// values stay in use.
func TestProviderEndpointDrift(t *testing.T) {
	api := newFakeAPI(t)
	logger, logs := newLogger()
	p := startProvider(t, testConfig(api, logger))
	pinned := p.Scope()
	moved := pinned
	moved.Endpoint, moved.Region = "https://s3.elsewhere.example", "eu-central-1"
	api.setScope(moved)
	for i := range 3 {
		c, _ := p.Retrieve(context.Background())
		p.Invalidate(c.AccessKeyID)
		c2, err := p.Retrieve(context.Background())
		if err != nil || c2.AccessKeyID == c.AccessKeyID {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	if p.Scope() != pinned {
		t.Errorf("scope = %+v, want pinned %+v", p.Scope(), pinned)
	}
	if n := logs.count("another storage endpoint or region"); n != 1 {
		t.Errorf("%d drift warnings, want 1", n)
	}
	if st := p.Stats(); st.ScopeDrifts != 3 {
		t.Errorf("ScopeDrifts = %d", st.ScopeDrifts)
	}
}

// A machine that sleeps past the expiration does not hand out dead keys:
// expiry is judged on the wall clock.
func TestProviderWallClockJump(t *testing.T) {
	api := newFakeAPI(t)
	clock := &offsetClock{}
	api.setNow(clock.Now)
	cfg := testConfig(api, nil)
	cfg.Clock = clock
	p := startProvider(t, cfg)
	first, _ := p.Retrieve(context.Background())
	clock.jump(2 * time.Hour) // suspended for two hours
	c, err := p.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKeyID == first.AccessKeyID || !c.Expires.After(clock.Now()) {
		t.Errorf("got %s expiring %v; now %v", c.AccessKeyID, c.Expires, clock.Now())
	}
	// Jumping into the refresh window (but not past expiry) returns the held
	// credentials at once and wakes the refresh.
	clock.jump(50 * time.Minute)
	c2, err := p.Retrieve(context.Background())
	if err != nil || c2.AccessKeyID != c.AccessKeyID {
		t.Errorf("in the refresh window: %s, %v", c2.AccessKeyID, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for api.requests.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := api.requests.Load(); n != 3 {
		t.Errorf("%d API requests, want 3", n)
	}
}

func TestProviderClose(t *testing.T) {
	api := newFakeAPI(t)
	p, err := newProvider(context.Background(), testConfig(api, nil), fastBackoff)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.Retrieve(context.Background())
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_ = p.Close()
	select {
	case <-p.done:
	default:
		t.Fatal("loop still running after Close")
	}
	if c2, err := p.Retrieve(context.Background()); err != nil || c2.AccessKeyID != c.AccessKeyID {
		t.Errorf("after Close: %v, %v", c2.AccessKeyID, err)
	}
	p.Invalidate(c.AccessKeyID)
	if _, err := p.Retrieve(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("err = %v, want ErrClosed", err)
	}
}

func TestProviderRetrieveHonoursContext(t *testing.T) {
	api := newFakeAPI(t)
	var down atomic.Bool
	api.setRespond(func(w http.ResponseWriter, _ int64) bool {
		if down.Load() {
			writeEnvelope(w, 500, "x", "down")
			return true
		}
		return false
	})
	cfg := testConfig(api, nil)
	cfg.ExpiredWaitBound = time.Minute
	p := startProvider(t, cfg)
	c, _ := p.Retrieve(context.Background())
	down.Store(true)
	p.Invalidate(c.AccessKeyID)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := p.Retrieve(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("Retrieve ignored its context")
	}
	// A wait that failed counts too.
	if st := p.Stats(); st.Waits != 1 || st.Waiting != 0 || st.WaitTime <= 0 {
		t.Errorf("Waits = %d, Waiting = %d, WaitTime = %v; want 1, 0, > 0", st.Waits, st.Waiting, st.WaitTime)
	}
}

func TestNewProviderErrors(t *testing.T) {
	for _, tt := range []struct {
		status int
		want   error
		text   string
	}{
		{401, ErrUnauthorized, "rejected the token"},
		{404, ErrNotFound, "does not exist"},
		{503, ErrUnavailable, "gave up after"},
	} {
		api := newFakeAPI(t)
		api.setRespond(func(w http.ResponseWriter, _ int64) bool {
			writeEnvelope(w, tt.status, "x", "injected")
			return true
		})
		cfg := testConfig(api, nil)
		cfg.MountRetryBound = 300 * time.Millisecond
		start := time.Now()
		_, err := NewProvider(context.Background(), cfg)
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%d: err = %v", tt.status, err)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("%d: took %v with a 300ms bound", tt.status, time.Since(start))
		}
	}
}

func TestNewEntrySchedule(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		life, window, margin time.Duration
	}{
		{time.Hour, 15 * time.Minute, 10 * time.Second},
		{12 * time.Hour, 3 * time.Hour, 10 * time.Second},
		{15 * time.Minute, 5 * time.Minute, 10 * time.Second},
		{6 * time.Minute, 3 * time.Minute, 10 * time.Second},
		{11 * time.Minute, 5 * time.Minute, 10 * time.Second},
		{3 * time.Second, 1500 * time.Millisecond, 300 * time.Millisecond},
	} {
		for range 2000 {
			e := newEntry(Credentials{Expiration: now.Add(tt.life)}, now)
			if got := now.Add(tt.life).Sub(e.staleAt); got != tt.window {
				t.Errorf("life %v: window %v, want %v", tt.life, got, tt.window)
			}
			if e.refreshAt.Before(e.staleAt) || e.refreshAt.Sub(e.staleAt) > tt.window/5 {
				t.Errorf("life %v: jitter %v, want 0 to %v later than the window's start", tt.life, e.refreshAt.Sub(e.staleAt), tt.window/5)
			}
			// The README's bound: never before half of the lifetime.
			if e.refreshAt.Before(now.Add(tt.life / 2)) {
				t.Fatalf("life %v: refresh %v after the fetch, before half the lifetime", tt.life, e.refreshAt.Sub(now))
			}
			if !e.refreshAt.Before(e.validTo) {
				t.Errorf("life %v: refresh at %v, not before the credentials stop being handed out (%v)", tt.life, e.refreshAt.Sub(now), e.validTo.Sub(now))
			}
			if got := now.Add(tt.life).Sub(e.validTo); got != tt.margin {
				t.Errorf("life %v: margin %v, want %v", tt.life, got, tt.margin)
			}
		}
	}
}

// An API that hands out the credentials the storage just rejected is backed
// off from, not called at the rate of rejected requests.
func TestProviderSameRejectedKey(t *testing.T) {
	api := newFakeAPI(t)
	sc := api.scope
	api.setRespond(func(w http.ResponseWriter, n int64) bool {
		w.Header().Set("Content-Type", "application/json")
		body := api.body(1, time.Now(), sc) // always key 1
		_ = json.NewEncoder(w).Encode(body)
		return true
	})
	cfg := testConfig(api, nil)
	cfg.ExpiredWaitBound = 300 * time.Millisecond
	p := startProvider(t, cfg)
	c, _ := p.Retrieve(context.Background())
	p.Invalidate(c.AccessKeyID)
	_, err := p.Retrieve(context.Background())
	if !errors.Is(err, ErrExpired) || !errors.Is(err, ErrInvalidResponse) {
		t.Errorf("err = %v", err)
	}
	// Backoff with full jitter (within 4 × 20 ms while the call waits): a
	// handful of calls in 300 ms, not hundreds.
	if n := api.requests.Load(); n > 30 {
		t.Errorf("%d API requests in 300 ms", n)
	}
}

func TestProviderRetryDelay(t *testing.T) {
	clock := newFakeClock()
	p := &Provider{clock: clock, backoffBase: time.Second, backoffMax: 30 * time.Second}
	now := clock.Now()
	unavailable := fmt.Errorf("x: %w", ErrUnavailable)
	for _, tt := range []struct {
		name     string
		err      error
		failures int
		validTo  time.Time
		max      time.Duration
		exact    bool
		// above is the previous failure's ceiling: the longest of 50
		// delays must exceed it, or the backoff did not grow. (With full
		// jitter, 50 draws all under half the ceiling: about 1e-15.)
		above time.Duration
	}{
		{"first failure", unavailable, 1, time.Time{}, time.Second, false, 0},
		{"grows", unavailable, 4, time.Time{}, 8 * time.Second, false, 4 * time.Second},
		{"capped", unavailable, 20, time.Time{}, 30 * time.Second, false, 16 * time.Second},
		{"bounded by validity", unavailable, 20, now.Add(10 * time.Second), 5 * time.Second, false, 0},
		{"at least the base", unavailable, 20, now.Add(time.Second), time.Second, false, 0},
		{"retry-after", &APIError{Status: 429, RetryAfter: 42 * time.Second}, 1, now.Add(10 * time.Second), 42 * time.Second, true, 0},
	} {
		var longest time.Duration
		for range 50 {
			d := p.retryDelay(tt.err, tt.failures, tt.validTo)
			if d < 0 || d > tt.max || tt.exact && d != tt.max {
				t.Errorf("%s: delay %v, max %v", tt.name, d, tt.max)
				break
			}
			longest = max(longest, d)
		}
		if longest <= tt.above {
			t.Errorf("%s: longest of 50 delays %v, want over %v (exponential backoff)", tt.name, longest, tt.above)
		}
	}
}

// Stats counts the API's answers by status, a refused connection as 0, over
// the first fetch's retries and the refreshes; Failures counts only failed
// refreshes.
func TestProviderStatsAPIAnswers(t *testing.T) {
	for _, tt := range []struct {
		name  string
		mount []int // answers to the first fetch (0: connection refused)
		want  map[int]uint64
	}{
		{"answered", []int{200}, map[int]uint64{200: 2}},
		{"unavailable and rate limited", []int{503, 429, 200}, map[int]uint64{503: 1, 429: 1, 200: 2}},
		{"refused", []int{0, 0, 200}, map[int]uint64{0: 2, 200: 2}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t)
			clock := newFakeClock() // FetchWithRetry's backoff takes no time
			api.setNow(clock.Now)
			cfg := testConfig(api, nil)
			cfg.Clock = clock
			cfg.HTTPClient = scriptAnswers(t, api, tt.mount...)
			p := startProvider(t, cfg)
			c, err := p.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			p.Invalidate(c.AccessKeyID)
			if _, err := p.Retrieve(context.Background()); err != nil { // the refreshed credentials
				t.Fatal(err)
			}
			st := p.Stats()
			if !maps.Equal(st.APIAnswers, tt.want) {
				t.Errorf("APIAnswers = %v, want %v", st.APIAnswers, tt.want)
			}
			if st.Refreshes != 2 || len(st.Failures) != 0 {
				t.Errorf("Refreshes = %d, Failures = %v; want 2 and none", st.Refreshes, st.Failures)
			}
			// Whether the Retrieve after Invalidate waited depends on the
			// refresh's speed; no wait took time on the fake clock.
			if st.Waits > 1 || st.Waiting != 0 || st.WaitTime != 0 {
				t.Errorf("Waits = %d, Waiting = %d, WaitTime = %v; want at most 1, 0, 0", st.Waits, st.Waiting, st.WaitTime)
			}
		})
	}
}

// Calls that wait for credentials are not silent: after warnAfter, one
// warning per wait episode however many calls wait, and one line when
// credentials are back. The waits are counted in Stats.
func TestProviderWaitWarning(t *testing.T) {
	for _, tt := range []struct {
		name     string
		unusable func(p *Provider, clock *fakeClock, key string) // makes the held credentials unusable
		why      string
	}{
		{"expired", func(_ *Provider, clock *fakeClock, _ string) { clock.advance(2 * time.Hour) }, `why="expired at `},
		{"rejected", func(p *Provider, _ *fakeClock, key string) { p.Invalidate(key) }, `why="rejected by the storage"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t)
			clock := newFakeClock() // stands still unless advanced: no refresh retry is due until then
			api.setNow(clock.Now)
			var down atomic.Bool
			api.setRespond(func(w http.ResponseWriter, _ int64) bool {
				if !down.Load() {
					return false
				}
				writeEnvelope(w, 503, "unavailable", "maintenance "+testToken)
				return true
			})
			logger, logs, msgs := newSignallingLogger()
			cfg := testConfig(api, logger)
			cfg.Clock = clock
			cfg.ExpiredWaitBound = time.Hour // the waits end when credentials come
			p := startProvider(t, cfg, func(p *Provider) { p.warnAfter = time.Millisecond })
			held, err := p.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}

			const calls, outage = 8, 5 * time.Second
			for round := 1; round <= 2; round++ { // the second episode warns again
				down.Store(true)
				tt.unusable(p, clock, held.AccessKeyID)
				p.poke()
				awaitLog(t, msgs, "cannot be refreshed") // so the warning has a last error

				got := make(chan string, calls)
				for range calls {
					go func() {
						c, err := p.Retrieve(context.Background())
						if err != nil {
							t.Errorf("Retrieve: %v", err)
						}
						got <- c.AccessKeyID
					}()
				}
				waitUntil(t, "all calls wait", func() bool { return p.Stats().Waiting == calls })
				awaitLog(t, msgs, "waiting for workspace credentials")
				down.Store(false)
				clock.advance(outage) // the refresh retry is due
				for range calls {
					if k := <-got; k == held.AccessKeyID {
						t.Errorf("round %d: got the unusable key %s", round, k)
					}
				}
				held, _ = p.Retrieve(context.Background())

				if n := logs.count(`msg="waiting for workspace credentials"`); n != round {
					t.Errorf("round %d: %d warnings in all, want %d:\n%s", round, n, round, logs)
				}
				if n := logs.count(`msg="workspace credentials available again"`); n != round {
					t.Errorf("round %d: %d lines on recovery in all, want %d:\n%s", round, n, round, logs)
				}
				st := p.Stats()
				if st.Waits != uint64(round*calls) || st.Waiting != 0 || st.WaitTime != time.Duration(round*calls)*outage {
					t.Errorf("round %d: Waits = %d, Waiting = %d, WaitTime = %v; want %d, 0, %v",
						round, st.Waits, st.Waiting, st.WaitTime, round*calls, time.Duration(round*calls)*outage)
				}
			}

			warning := logs.line("waiting for workspace credentials")
			for _, want := range []string{"level=WARN", "workspace=acme/data", "waiting_for=1ms", tt.why, "last_error=", "503"} {
				if !strings.Contains(warning, want) {
					t.Errorf("warning lacks %q: %s", want, warning)
				}
			}
			info := logs.line("workspace credentials available again")
			for _, want := range []string{"level=INFO", "workspace=acme/data", "waited=5s"} {
				if !strings.Contains(info, want) {
					t.Errorf("recovery line lacks %q: %s", want, info)
				}
			}
			assertNoSecrets(t, "logs", logs.String())
		})
	}
}

// TestProviderWaitingCallerRetriesPromptly: once the held credentials have
// expired during an outage, the loop's backoff has grown (here toward a
// minute); a Retrieve that then waits must get fresh credentials about
// backoffBase after the API is back, not at the end of that backoff.
func TestProviderWaitingCallerRetriesPromptly(t *testing.T) {
	api := newFakeAPI(t)
	const ttl = 2 * time.Second
	api.ttl.Store(int64(ttl))
	var down atomic.Bool
	api.setRespond(func(w http.ResponseWriter, _ int64) bool {
		if !down.Load() {
			return false
		}
		writeEnvelope(w, 503, "unavailable", "maintenance") // no Retry-After
		return true
	})
	cfg := testConfig(api, nil)
	cfg.ExpiredWaitBound = 5 * time.Second
	p := startProvider(t, cfg, func(p *Provider) { p.backoffMax = time.Minute })
	down.Store(true)
	// Until the credentials stop being handed out (0.9·ttl), the backoff
	// is capped by their remaining validity; after it, by backoffMax only.
	time.Sleep(time.Until(p.Stats().Expiration.Add(300 * time.Millisecond)))
	if p.Stats().Failures[FailureUnavailable] < 5 {
		t.Fatalf("stats = %+v, want several failed refreshes", p.Stats())
	}

	type result struct {
		err error
		at  time.Time
	}
	got := make(chan result, 1)
	go func() {
		_, err := p.Retrieve(context.Background())
		got <- result{err, time.Now()}
	}()
	time.Sleep(300 * time.Millisecond) // the call waits while the API is still down
	down.Store(false)
	up := time.Now()
	r := <-got
	if r.err != nil {
		t.Fatalf("Retrieve failed %v after the API came back: %v", r.at.Sub(up), r.err)
	}
	if d := r.at.Sub(up); d > 500*time.Millisecond {
		t.Errorf("Retrieve returned %v after the API came back; want within waitingRetry (%v)", d, p.waitingRetry())
	}
}
