package creds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFetchRequest(t *testing.T) {
	api := newFakeAPI(t)
	c := newTestClient(t, testConfig(api, nil))
	cr, err := c.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cr.Bucket != "ws-bucket" || cr.Prefix != "acme/data/" {
		t.Errorf("scope = %+v", cr.Scope)
	}
	r := api.last()
	for h, want := range map[string]string{
		"Authorization": "Bearer " + testToken,
		"Accept":        "application/json",
		"User-Agent":    "mount-ws/1.2.3",
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	if r.Method != http.MethodGet || r.URL.Path != "/api/v1/org/acme/ws/data/storage/credentials" {
		t.Errorf("request %s %s", r.Method, r.URL.Path)
	}
}

func TestFetchErrors(t *testing.T) {
	tests := []struct {
		status   int
		body     string
		sentinel error
		temp     bool
		want     []string // substrings of the message
	}{
		{400, `{"code":400,"type":"invalid_request","detail":"Bad slug"}`, ErrRefused, false, []string{"refused", "400 invalid_request: Bad slug"}},
		{401, `{"code":401,"type":"authentication_error","detail":"Authentication failed"}`, ErrUnauthorized, false, []string{"rejected the token from environment variable WS_TOKEN", "401"}},
		{403, `{"code":403,"type":"permission_denied","detail":"nope"}`, ErrForbidden, false, []string{"no access to workspace acme/data", "403"}},
		{404, `{"code":404,"type":"not_found","detail":"Workspace not found"}`, ErrNotFound, false, []string{"workspace acme/data does not exist", "404"}},
		{405, `{"code":405,"type":"method_not_allowed","detail":"x"}`, ErrRefused, false, []string{"check the API URL", "405"}},
		{409, `{"code":409,"type":"conflict","detail":"Workspace is being migrated"}`, ErrRefused, false, []string{"Workspace is being migrated", "409"}},
		{422, `{"code":422,"type":"validation_error","detail":"Validation failed","errors":[{"loc":["path","org"],"msg":"too short","type":"value_error"},{"loc":"ws","msg":"bad","type":"x"},{"loc":["body",0,"x"],"msg":"m","type":"t"}]}`,
			ErrRefused, false, []string{"422", "path.org: too short", "ws: bad", "body.0.x: m"}},
		{422, `{"detail":[{"loc":["path","ws"],"msg":"field required","type":"missing"}]}`, ErrRefused, false, []string{"path.ws: field required"}},
		{426, `{"code":426,"type":"upgrade_required","detail":"Client too old"}`, ErrUpgradeRequired, false, []string{"version 1.2.3", "upgrade mount-ws", "426"}},
		{429, `{"code":429,"type":"rate_limited","detail":"slow down"}`, ErrRateLimited, true, []string{"rate limiting", "429"}},
		{500, `{"code":500,"type":"internal_error","detail":"boom"}`, ErrUnavailable, true, []string{"unavailable", "500 internal_error: boom"}},
		{502, `<html><body><h1>502 Bad Gateway</h1></body></html>`, ErrUnavailable, true, []string{"502 Bad Gateway: non-JSON body: <html><body><h1>502 Bad Gateway"}},
		{503, ``, ErrUnavailable, true, []string{"503", "empty body"}},
		{504, `{"code":504,"detail":"upstream tim`, ErrUnavailable, true, []string{"504", "non-JSON body"}},
		{418, `I'm a teapot`, ErrRefused, false, []string{"418", "teapot"}},
		{401, `{"detail":"token ` + testToken + ` is bad"}`, ErrUnauthorized, false, []string{"token REDACTED is bad"}},
		{500, `oops ` + testToken, ErrUnavailable, true, []string{"oops REDACTED"}},
	}
	api := newFakeAPI(t)
	c := newTestClient(t, testConfig(api, nil))
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			api.setRespond(func(w http.ResponseWriter, _ int64) bool {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
				return true
			})
			_, err := c.Fetch(context.Background())
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tt.status {
				t.Fatalf("err = %#v, want *APIError %d", err, tt.status)
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.sentinel)
			}
			if IsTemporary(err) != tt.temp || ae.Temporary() != tt.temp {
				t.Errorf("IsTemporary = %v, want %v", IsTemporary(err), tt.temp)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q lacks %q", err, w)
				}
			}
			assertNoSecrets(t, "error", err.Error())
		})
	}
	t.Run("long answers", func(t *testing.T) {
		var items []string
		for i := range 50 {
			items = append(items, fmt.Sprintf(`{"loc":["f%d"],"msg":"bad","type":"t"}`, i))
		}
		api.setRespond(func(w http.ResponseWriter, _ int64) bool {
			w.WriteHeader(422)
			_, _ = fmt.Fprintf(w, `{"detail":"%s","errors":[%s]}`, strings.Repeat("d", 5000), strings.Join(items, ","))
			return true
		})
		_, err := c.Fetch(context.Background())
		var ae *APIError
		if !errors.As(err, &ae) || len(ae.Validation) != 50 {
			t.Fatalf("err = %v", err)
		}
		if msg := err.Error(); len(msg) > 800 || !strings.Contains(msg, "and 45 more") {
			t.Errorf("message of %d bytes: %s", len(msg), msg)
		}
	})
	t.Run("422 structure", func(t *testing.T) {
		api.setRespond(func(w http.ResponseWriter, _ int64) bool {
			w.WriteHeader(422)
			_, _ = w.Write([]byte(tests[6].body))
			return true
		})
		_, err := c.Fetch(context.Background())
		var ae *APIError
		errors.As(err, &ae)
		if len(ae.Validation) != 3 || strings.Join(ae.Validation[0].Loc, ",") != "path,org" || ae.Validation[0].Type != "value_error" {
			t.Errorf("validation = %+v", ae.Validation)
		}
	})
}

func TestFetchOversizedBodies(t *testing.T) {
	api := newFakeAPI(t)
	c := newTestClient(t, testConfig(api, nil))
	big := strings.Repeat("x", MaxBodySize+10)
	for _, status := range []int{200, 500} {
		api.setRespond(func(w http.ResponseWriter, _ int64) bool {
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"detail":"` + big + `"}`))
			return true
		})
		_, err := c.Fetch(context.Background())
		if err == nil {
			t.Fatalf("status %d: oversized body accepted", status)
		}
		if status == 200 && (!errors.Is(err, ErrInvalidResponse) || !strings.Contains(err.Error(), "larger than")) {
			t.Errorf("200: err = %v", err)
		}
		if status == 500 && (!errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "body too large")) {
			t.Errorf("500: err = %v", err)
		}
		if len(err.Error()) > 1000 {
			t.Errorf("message of %d bytes", len(err.Error()))
		}
	}
}

func TestFetchMalformed200(t *testing.T) {
	api := newFakeAPI(t)
	c := newTestClient(t, testConfig(api, nil))
	api.setRespond(func(w http.ResponseWriter, _ int64) bool {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>login</html>"))
		return true
	})
	_, err := c.Fetch(context.Background())
	if !errors.Is(err, ErrInvalidResponse) || !strings.Contains(err.Error(), "text/html") {
		t.Errorf("err = %v", err)
	}
}

func TestFetchRedirectRefused(t *testing.T) {
	api := newFakeAPI(t)
	c := newTestClient(t, testConfig(api, nil))
	api.setRespond(func(w http.ResponseWriter, _ int64) bool {
		w.Header().Set("Location", "http://evil.example/steal")
		w.WriteHeader(http.StatusFound)
		return true
	})
	_, err := c.Fetch(context.Background())
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "evil.example") {
		t.Errorf("err = %v", err)
	}
	if n := api.requests.Load(); n != 1 {
		t.Errorf("%d requests: redirect followed", n)
	}
}

func TestFetchConnectionError(t *testing.T) {
	api := newFakeAPI(t)
	cfg := testConfig(api, nil)
	api.srv.Close()
	c := newTestClient(t, cfg)
	_, err := c.Fetch(context.Background())
	if !errors.Is(err, ErrUnavailable) || !IsTemporary(err) {
		t.Errorf("err = %v, want ErrUnavailable", err)
	}
}

func TestFetchTimeout(t *testing.T) {
	api := newFakeAPI(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	api.setRespond(func(w http.ResponseWriter, _ int64) bool {
		<-release
		return false
	})
	cfg := testConfig(api, nil)
	cfg.RequestTimeout = 100 * time.Millisecond
	c := newTestClient(t, cfg)
	start := time.Now()
	_, err := c.Fetch(context.Background())
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no answer within") {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	// A cancelled caller is not an API failure.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Fetch(ctx); !errors.Is(err, context.Canceled) || IsTemporary(err) {
		t.Errorf("cancelled: err = %v", err)
	}
	// The timeout counts as a request without an answer; the cancelled
	// request does not count.
	if got, want := c.answerCounts(), map[int]uint64{0: 1}; !maps.Equal(got, want) {
		t.Errorf("answers = %v, want %v", got, want)
	}
}

func TestFetchWithRetry(t *testing.T) {
	httpDate := func(c *fakeClock, d time.Duration) string {
		return c.Now().Add(d).UTC().Format(http.TimeFormat)
	}
	tests := []struct {
		name       string
		statuses   []int                     // answers before success (0: success)
		retryAfter func(c *fakeClock) string // header value for 429s
		bound      time.Duration
		wantReqs   int64
		wantErr    error
		checkSleep func(t *testing.T, sleeps []time.Duration)
	}{
		{name: "500 then ok", statuses: []int{500, 502, 504}, bound: time.Minute, wantReqs: 4},
		{name: "401 at once", statuses: []int{401, 401}, bound: time.Minute, wantReqs: 1, wantErr: ErrUnauthorized},
		{name: "404 at once", statuses: []int{404}, bound: time.Minute, wantReqs: 1, wantErr: ErrNotFound},
		{name: "422 at once", statuses: []int{422}, bound: time.Minute, wantReqs: 1, wantErr: ErrRefused},
		{name: "426 at once", statuses: []int{426}, bound: time.Minute, wantReqs: 1, wantErr: ErrUpgradeRequired},
		{name: "bound exceeded", statuses: []int{500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500}, bound: 5 * time.Second, wantErr: ErrUnavailable,
			checkSleep: func(t *testing.T, s []time.Duration) {
				var total time.Duration
				for i, d := range s {
					total += d
					if ceil := backoffCeiling(i+1, fetchBackoffBase, fetchBackoffMax); d > ceil || d < 0 {
						t.Errorf("sleep %d = %v, ceiling %v", i, d, ceil)
					}
				}
				if total > 5*time.Second {
					t.Errorf("slept %v in total, bound 5s", total)
				}
			}},
		{name: "429 seconds", statuses: []int{429, 429}, retryAfter: func(*fakeClock) string { return "3" }, bound: time.Minute, wantReqs: 3,
			checkSleep: func(t *testing.T, s []time.Duration) {
				if len(s) != 2 || s[0] != 3*time.Second || s[1] != 3*time.Second {
					t.Errorf("sleeps = %v, want [3s 3s]", s)
				}
			}},
		{name: "429 date", statuses: []int{429}, retryAfter: func(c *fakeClock) string { return httpDate(c, 7*time.Second) }, bound: time.Minute, wantReqs: 2,
			checkSleep: func(t *testing.T, s []time.Duration) {
				if len(s) != 1 || s[0] < 6*time.Second || s[0] > 8*time.Second {
					t.Errorf("sleeps = %v, want ~7s", s)
				}
			}},
		{name: "429 beyond bound", statuses: []int{429}, retryAfter: func(*fakeClock) string { return "120" }, bound: 10 * time.Second, wantReqs: 1, wantErr: ErrRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := newFakeAPI(t)
			clock := newFakeClock()
			api.setNow(clock.Now)
			api.setRespond(func(w http.ResponseWriter, n int64) bool {
				if int(n) > len(tt.statuses) {
					return false
				}
				if tt.retryAfter != nil {
					w.Header().Set("Retry-After", tt.retryAfter(clock))
				}
				writeEnvelope(w, tt.statuses[n-1], "x", "injected")
				return true
			})
			cfg := testConfig(api, nil)
			cfg.Clock = clock
			c := newTestClient(t, cfg)
			_, err := c.FetchWithRetry(context.Background(), tt.bound)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantReqs != 0 && api.requests.Load() != tt.wantReqs {
				t.Errorf("%d requests, want %d", api.requests.Load(), tt.wantReqs)
			}
			if tt.checkSleep != nil {
				tt.checkSleep(t, clock.slept())
			}
			// Every request is counted by the status of its answer.
			want := map[int]uint64{}
			for i := range int(api.requests.Load()) {
				if i < len(tt.statuses) {
					want[tt.statuses[i]]++
				} else {
					want[http.StatusOK]++
				}
			}
			if got := c.answerCounts(); !maps.Equal(got, want) {
				t.Errorf("answers = %v, want %v", got, want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		" 5 ":                           5 * time.Second,
		"-1":                            0,
		"abc":                           0,
		"99999999999999":                maxRetryAfter,
		"Thu, 01 Jan 2026 00:00:30 GMT": 30 * time.Second,
		"Wed, 31 Dec 2025 23:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestNewClientConfig(t *testing.T) {
	tok := StaticToken("x", "test")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"http remote", Config{APIURL: "http://api.example.com", Org: "a", Workspace: "b", TokenSource: tok}, "plain http"},
		{"bad org", Config{APIURL: "https://api.example.com", Org: "a b", Workspace: "b", TokenSource: tok}, "organisation slug"},
		{"no token", Config{APIURL: "https://api.example.com", Org: "a", Workspace: "b"}, "no token source"},
		{"no url", Config{Org: "a", Workspace: "b", TokenSource: tok}, "empty URL"},
	}
	for _, tt := range tests {
		_, err := NewClient(tt.cfg)
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want ErrConfig containing %q", tt.name, err, tt.want)
		}
	}
	for _, ok := range []Config{
		{APIURL: "http://api.example.com", AllowInsecureHTTP: true, Org: "a", Workspace: "b", TokenSource: tok},
		{APIURL: "http://127.0.0.1:1/base/", Org: "a", Workspace: "b", TokenSource: tok},
	} {
		c, err := NewClient(ok)
		if err != nil {
			t.Errorf("%s: %v", ok.APIURL, err)
			continue
		}
		if !strings.HasSuffix(c.url, "/api/v1/org/a/ws/b/storage/credentials") || strings.Contains(c.url, "//api/") {
			t.Errorf("url = %s", c.url)
		}
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	logger, logs := newLogger()
	src := FileToken(path, logger)

	_, err := src.Token()
	if !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), TokenEnv) {
		t.Errorf("missing file: err = %v", err)
	}
	for content, want := range map[string]string{"": "empty", "  \n": "empty", "a b\n": "white space"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Token(); !errors.Is(err, ErrToken) || !strings.Contains(err.Error(), want) {
			t.Errorf("content %q: err = %v", content, err)
		}
	}
	if err := os.WriteFile(path, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := src.Token(); err != nil || tok.Reveal() != testToken {
		t.Errorf("Token() = %v, %v", tok, err)
	}
	if logs.count("chmod 600") != 0 {
		t.Errorf("warned about a 0600 file: %s", logs)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	// Readable by others: still used, warned about once.
	for range 2 {
		if tok, err := src.Token(); err != nil || tok.Reveal() != testToken {
			t.Errorf("mode 0644: Token() = %v, %v", tok, err)
		}
	}
	if n := logs.count("chmod 600"); n != 1 {
		t.Errorf("%d permission warnings, want 1: %s", n, logs)
	}
	assertNoSecrets(t, "logs", logs.String())
}

// A token rewritten on disk is used by the very next fetch.
func TestTokenFileRotation(t *testing.T) {
	api := newFakeAPI(t)
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(testToken), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(api, nil)
	cfg.TokenSource = FileToken(path, nil)
	c := newTestClient(t, cfg)
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("rotated-token-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := api.last().Header.Get("Authorization"); got != "Bearer rotated-token-2" {
		t.Errorf("Authorization = %q after rotation", got)
	}
	// A rejected token names the file, not the token.
	if err := os.WriteFile(path, []byte("wrong-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := c.Fetch(context.Background())
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "token file "+path) || strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("err = %v", err)
	}
}

func TestResolveTokenSource(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == TokenEnv {
				return v
			}
			return ""
		}
	}
	t.Setenv("XDG_CONFIG_HOME", "/cfg")
	for _, tt := range []struct {
		env, file, want string
	}{
		{"", "", "token file /cfg/mount-ws/token"},
		{"abc", "", "environment variable WS_TOKEN"},
		{"abc", "/x/tok", "token file /x/tok"},
	} {
		src, err := ResolveTokenSource(env(tt.env), tt.file, nil)
		if err != nil || src.String() != tt.want {
			t.Errorf("env=%q file=%q: %v, %v; want %q", tt.env, tt.file, src, err, tt.want)
		}
	}
}

func TestFetchTLS(t *testing.T) {
	api := newFakeAPI(t)
	tlsSrv := httptest.NewUnstartedServer(api.srv.Config.Handler)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	cfg := testConfig(api, nil)
	cfg.APIURL = tlsSrv.URL

	// The test server's certificate is not trusted by default: refused,
	// and not retried.
	c := newTestClient(t, cfg)
	_, err := c.FetchWithRetry(context.Background(), time.Minute)
	if err == nil || IsTemporary(err) || !strings.Contains(err.Error(), "not trusted") {
		t.Errorf("untrusted certificate: err = %v", err)
	}
	if n := api.requests.Load(); n != 0 {
		t.Errorf("%d requests reached the handler", n)
	}

	// A client that trusts it works.
	cfg.HTTPClient = tlsSrv.Client()
	c = newTestClient(t, cfg)
	if _, err := c.Fetch(context.Background()); err != nil {
		t.Errorf("trusted certificate: %v", err)
	}
}
