package creds

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mount-ws/internal/syncbuf"
)

// Test secrets: distinctive, so a search of logs and errors finds any leak.
const (
	testToken   = "tok-SUPERSECRET-bearer-0123456789"
	testSecret  = "sk-SUPERSECRET-access-9876543210"
	testSession = "st-SUPERSECRET-session-5555555555"
)

// fakeAPI is an httptest workspace API. By default it mints credentials
// with a fresh access key per request; respond overrides the answer.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	requests atomic.Int64
	ttl      atomic.Int64 // nanoseconds

	mu      sync.Mutex
	now     func() time.Time                          // guarded by mu: the clock expirations are computed on
	respond func(w http.ResponseWriter, n int64) bool // guarded by mu: returns true if it answered
	scope   Scope                                     // guarded by mu
	lastReq *http.Request                             // guarded by mu
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{t: t, now: time.Now, scope: Scope{
		Bucket: "ws-bucket", Prefix: "acme/data/", Endpoint: "http://127.0.0.1:9", Region: "us-east-1",
	}}
	f.ttl.Store(int64(time.Hour))
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	n := f.requests.Add(1)
	f.mu.Lock()
	f.lastReq = r.Clone(context.Background())
	respond, now, scope := f.respond, f.now, f.scope
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+testToken && !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer rotated-") {
		writeEnvelope(w, 401, "authentication_error", "Authentication failed")
		return
	}
	if respond != nil && respond(w, n) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(f.body(n, now(), scope))
}

// body is a valid answer for request n.
func (f *fakeAPI) body(n int64, now time.Time, s Scope) map[string]any {
	return map[string]any{
		"access_key_id":     fmt.Sprintf("AKIATEST%08d", n),
		"secret_access_key": testSecret,
		"session_token":     testSession,
		"expiration":        now.Add(time.Duration(f.ttl.Load())).UTC().Format(time.RFC3339Nano),
		"bucket":            s.Bucket,
		"prefix":            s.Prefix,
		"endpoint":          s.Endpoint,
		"region":            s.Region,
	}
}

func (f *fakeAPI) setRespond(fn func(w http.ResponseWriter, n int64) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.respond = fn
}

func (f *fakeAPI) setScope(s Scope) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scope = s
}

func (f *fakeAPI) setNow(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

func (f *fakeAPI) last() *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastReq
}

func writeEnvelope(w http.ResponseWriter, status int, typ, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": status, "type": typ, "detail": detail})
}

// logBuffer captures slog output for leak checks.
type logBuffer struct{ syncbuf.Buffer }

func (b *logBuffer) count(substr string) int { return strings.Count(b.String(), substr) }

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// signalHandler passes records on to Handler and sends each message on
// msgs, dropping it if msgs is full.
type signalHandler struct {
	slog.Handler
	msgs chan<- string
}

func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	select {
	case h.msgs <- r.Message:
	default:
	}
	return err
}

func (h signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return signalHandler{h.Handler.WithAttrs(as), h.msgs}
}

func (h signalHandler) WithGroup(name string) slog.Handler {
	return signalHandler{h.Handler.WithGroup(name), h.msgs}
}

// newSignallingLogger is newLogger that also sends every message logged
// on msgs, for awaitLog.
func newSignallingLogger() (*slog.Logger, *logBuffer, <-chan string) {
	l, b := newLogger()
	msgs := make(chan string, 1024)
	return slog.New(signalHandler{l.Handler(), msgs}), b, msgs
}

// awaitLog reads msgs until a message containing want, failing the test
// after 10 s.
func awaitLog(t *testing.T, msgs <-chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-msgs:
			if strings.Contains(m, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no log message %q within 10s", want)
		}
	}
}

// line returns the first logged line containing substr, or "".
func (b *logBuffer) line(substr string) string {
	for l := range strings.Lines(b.String()) {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

// waitUntil polls cond until it holds, failing the test after 10 s. Use it
// only for conditions no signal tells about.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// assertNoSecrets fails if any test secret appears in s.
func assertNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range []string{testToken, testSecret, testSession, "SUPERSECRET"} {
		if strings.Contains(s, sec) {
			t.Errorf("%s contains a secret (%q):\n%s", what, sec, s)
		}
	}
}

// fakeClock records sleeps and advances time by them, without sleeping.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now().Round(0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

// advance moves the clock forward by d.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

// offsetClock is the real clock shifted by an adjustable offset: moving it
// forward simulates a machine that was suspended.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) Now() time.Time { return time.Now().Round(0).Add(time.Duration(c.off.Load())) }
func (c *offsetClock) Sleep(ctx context.Context, d time.Duration) error {
	return systemClock{}.Sleep(ctx, d)
}
func (c *offsetClock) jump(d time.Duration) { c.off.Add(int64(d)) }

// testConfig is a Config for api with the test token.
func testConfig(api *fakeAPI, logger *slog.Logger) Config {
	return Config{
		APIURL:          api.srv.URL,
		Org:             "acme",
		Workspace:       "data",
		TokenSource:     StaticToken(testToken, "environment variable WS_TOKEN"),
		Version:         "1.2.3",
		Logger:          logger,
		RequestTimeout:  2 * time.Second,
		MountRetryBound: 2 * time.Second,
	}
}

// answerScript scripts the answers of a fakeAPI, one status per request:
// 0 refuses the connection, 200 answers normally, others answer with that
// status (429 with "Retry-After: 1"). Once the script is used up, every
// request is answered normally.
type answerScript struct {
	mu    sync.Mutex
	steps []int // guarded by mu
}

// next pops the next step; with refusal set, only if it is a refusal.
func (s *answerScript) next(refusal bool) (status int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.steps) == 0 || refusal && s.steps[0] != 0 {
		return 0, false
	}
	status, s.steps = s.steps[0], s.steps[1:]
	return status, true
}

// scriptAnswers makes api follow steps (see answerScript) and returns the
// HTTP client to put in Config.HTTPClient: it makes the refusals happen.
func scriptAnswers(t *testing.T, api *fakeAPI, steps ...int) *http.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	s := &answerScript{steps: steps}
	api.setRespond(func(w http.ResponseWriter, _ int64) bool {
		status, ok := s.next(false)
		switch {
		case !ok || status == http.StatusOK:
			return false
		case status == http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "1")
		}
		writeEnvelope(w, status, "x", "scripted")
		return true
	})
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true, // one dial per request, so a refusal is one request
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if _, refuse := s.next(true); refuse {
				addr = closed
			}
			return d.DialContext(ctx, network, addr)
		},
	}}
}
