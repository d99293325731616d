package creds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultRequestTimeout   = 10 * time.Second
	DefaultMountRetryBound  = 20 * time.Second
	DefaultExpiredWaitBound = 30 * time.Second
)

// MaxBodySize bounds every answer body read from the API, success or error.
const MaxBodySize = 64 << 10

// Backoff of FetchWithRetry: full jitter over an exponentially growing cap.
const (
	fetchBackoffBase = 250 * time.Millisecond
	fetchBackoffMax  = 4 * time.Second
	maxRetryAfter    = time.Hour
)

// Config configures a Client and a Provider. APIURL, Org, Workspace and
// TokenSource are required; the rest have defaults.
type Config struct {
	// APIURL is the workspace API base URL, e.g. "https://api.example.com".
	// http:// is refused unless the host is loopback or AllowInsecureHTTP.
	APIURL string
	// Org and Workspace are the slugs (see ParseSlug).
	Org, Workspace string
	// TokenSource supplies the bearer token; it is asked before every fetch.
	TokenSource TokenSource
	// AllowInsecureHTTP permits http:// to non-loopback hosts, for the API
	// URL and for the S3 endpoint in its answers.
	AllowInsecureHTTP bool
	// HTTPClient, when set, is used for API requests instead of the
	// package's client (TLS 1.2+, verified certificates, connect, TLS and
	// header timeouts, HTTPS_PROXY honoured). Redirects are refused either way.
	HTTPClient *http.Client
	// Version is this program's version, sent as "User-Agent: mount-ws/<Version>".
	Version string
	// Logger receives structured logs; nil discards them. No secret is
	// ever logged.
	Logger *slog.Logger
	// RequestTimeout bounds each API request (default 10 s).
	RequestTimeout time.Duration
	// MountRetryBound bounds the retries of the first fetch in NewProvider,
	// when a person waits at a terminal (default 20 s).
	MountRetryBound time.Duration
	// ExpiredWaitBound is how long Provider.Retrieve waits for fresh
	// credentials once the held ones have expired, before failing with
	// ErrExpired (default 30 s).
	ExpiredWaitBound time.Duration
	// Clock replaces the system clock, for tests: every expiry judgement
	// and FetchWithRetry's sleeps go through it. (The Provider's background
	// loop also uses timers, and re-reads the Clock when they fire or when
	// Retrieve notices the time has moved.)
	Clock Clock
}

// Client talks to the workspace API's credentials endpoint. It is safe for
// concurrent use and holds no credentials itself. It counts the API's
// answers by HTTP status (see Stats.APIAnswers).
type Client struct {
	url       string // the credentials URL
	workspace string // "org/ws"
	tokens    TokenSource
	insecure  bool
	http      *http.Client
	userAgent string
	version   string
	log       *slog.Logger
	clock     Clock
	timeout   time.Duration

	backoffBase, backoffMax time.Duration // FetchWithRetry's backoff

	// mu guards answers. It is never held across a network call, and no
	// other lock is taken while holding it.
	mu      sync.Mutex
	answers map[int]uint64 // requests by HTTP status of the answer; 0: no answer
}

// NewClient validates cfg (slugs, API URL, token source) without any
// network access. Errors wrap ErrConfig.
func NewClient(cfg Config) (*Client, error) {
	if err := validateSlug("organisation", cfg.Org); err != nil {
		return nil, err
	}
	if err := validateSlug("workspace", cfg.Workspace); err != nil {
		return nil, err
	}
	u, err := checkURL(cfg.APIURL, cfg.AllowInsecureHTTP)
	if err != nil {
		return nil, fmt.Errorf("API URL: %w: %w", err, ErrConfig)
	}
	if cfg.TokenSource == nil {
		return nil, fmt.Errorf("no token source: %w", ErrConfig)
	}
	u.Path += "/api/v1/org/" + cfg.Org + "/ws/" + cfg.Workspace + "/storage/credentials"
	c := &Client{
		url:         u.String(),
		workspace:   cfg.Org + "/" + cfg.Workspace,
		tokens:      cfg.TokenSource,
		insecure:    cfg.AllowInsecureHTTP,
		version:     cfg.Version,
		log:         cfg.Logger,
		clock:       cfg.Clock,
		timeout:     cfg.RequestTimeout,
		backoffBase: fetchBackoffBase,
		backoffMax:  fetchBackoffMax,
		answers:     map[int]uint64{},
	}
	if c.version == "" {
		c.version = "dev"
	}
	c.userAgent = "mount-ws/" + c.version
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.clock == nil {
		c.clock = systemClock{}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultRequestTimeout
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = newHTTPClient(c.timeout)
	}
	copied := *hc
	copied.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &copied
	return c, nil
}

func newHTTPClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.TLSHandshakeTimeout = 5 * time.Second
	tr.ResponseHeaderTimeout = timeout
	tr.MaxIdleConnsPerHost = 2
	return &http.Client{Transport: tr}
}

// Workspace returns "org/ws".
func (c *Client) Workspace() string { return c.workspace }

// Fetch makes exactly one request for credentials and validates the answer.
// Errors are classified by the package's sentinels: an *APIError for a
// non-200 answer, an *InvalidResponseError for a refused 200 answer,
// ErrUnavailable for timeouts and connection errors, ErrToken when no token
// could be read. A cancelled ctx returns ctx.Err() wrapped.
//
// Every request sent is counted by the HTTP status of its answer, or as 0
// when none came (connection refused or reset, timeout); a request whose
// ctx was cancelled without an answer is not counted.
func (c *Client) Fetch(ctx context.Context) (Credentials, error) {
	tok, err := c.tokens.Token()
	if err != nil {
		return Credentials{}, err
	}
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, c.url, nil)
	if err != nil {
		return Credentials{}, fmt.Errorf("build request: %w: %w", err, ErrConfig)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)

	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() == nil { // else the caller gave up, which says nothing about the API
			c.count(0)
		}
		return Credentials{}, c.transportError(ctx, req.URL.Host, err)
	}
	defer resp.Body.Close()
	c.count(resp.StatusCode)
	body, truncated, readErr := readBody(resp.Body)

	if resp.StatusCode == http.StatusOK {
		switch {
		case readErr != nil:
			return Credentials{}, fmt.Errorf("read credentials answer from %s: %w: %w", req.URL.Host, ErrUnavailable, readErr)
		case truncated:
			return Credentials{}, &InvalidResponseError{Reason: fmt.Sprintf("body larger than %d bytes", MaxBodySize)}
		}
		cr, err := parseCredentials(body, c.clock.Now(), c.insecure)
		if ct := resp.Header.Get("Content-Type"); err != nil && ct != "" && !strings.Contains(ct, "json") {
			err = fmt.Errorf("%w (content type %q: is the API URL right?)", err, ct)
		}
		return cr, err
	}
	e := decodeAPIError(resp.StatusCode, body, truncated || readErr != nil, tok.Reveal())
	e.Source = c.tokens.String()
	e.Workspace = c.workspace
	e.Version = c.version
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.clock.Now())
	e.Location = resp.Header.Get("Location")
	return Credentials{}, e
}

// count records one request answered with status (0: no answer).
func (c *Client) count(status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.answers[status]++
}

// answerCounts returns a copy of the answer counts.
func (c *Client) answerCounts() map[int]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.answers)
}

// readBody reads at most MaxBodySize bytes; truncated reports a longer body.
func readBody(r io.Reader) (body []byte, truncated bool, err error) {
	body, err = io.ReadAll(io.LimitReader(r, MaxBodySize+1))
	if len(body) > MaxBodySize {
		return body[:MaxBodySize], true, err
	}
	return body, false, err
}

// transportError classifies a failed round trip. parent is the caller's
// context: its cancellation is not a transport failure.
func (c *Client) transportError(parent context.Context, host string, err error) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("request credentials from %s: %w", host, perr)
	}
	var verr *tls.CertificateVerificationError
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	if errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) {
		return fmt.Errorf("TLS certificate of %s is not trusted; check the API URL: %w", host, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("request credentials from %s: no answer within %s: %w", host, c.timeout, ErrUnavailable)
	}
	return fmt.Errorf("request credentials from %s: %w: %w", host, ErrUnavailable, err)
}

// parseRetryAfter decodes a Retry-After value: delay seconds or an HTTP date.
// It returns 0 for an absent or malformed value and caps at maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return min(time.Duration(min(n, int64(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}

// FetchWithRetry calls Fetch until it succeeds, fails with an error that is
// not temporary (see IsTemporary), or the next attempt would start more than
// bound after the first. 429 answers are retried after their Retry-After
// delay; other temporary failures after an exponential backoff with full
// jitter. The error of the last attempt is returned, wrapped with the
// attempt count.
func (c *Client) FetchWithRetry(ctx context.Context, bound time.Duration) (Credentials, error) {
	start := c.clock.Now()
	for attempt := 1; ; attempt++ {
		cr, err := c.Fetch(ctx)
		if err == nil || !IsTemporary(err) || ctx.Err() != nil {
			return cr, err
		}
		delay := retryDelay(err, attempt, c.backoffBase, c.backoffMax)
		elapsed := c.clock.Now().Sub(start)
		if elapsed+delay > bound {
			return Credentials{}, fmt.Errorf("gave up after %d attempt(s) in %s: %w", attempt, elapsed.Round(time.Millisecond), err)
		}
		c.log.Warn("workspace API request failed; retrying",
			"workspace", c.workspace, "attempt", attempt, "retry_in", delay.Round(time.Millisecond), "error", err)
		if serr := c.clock.Sleep(ctx, delay); serr != nil {
			return Credentials{}, fmt.Errorf("waiting to retry (%w) after: %w", serr, err)
		}
	}
}

// retryDelay is the wait before attempt+1: the server's Retry-After when it
// gave one, otherwise full jitter over min(max, base·2^(attempt-1)).
func retryDelay(err error, attempt int, base, max time.Duration) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter
	}
	return fullJitter(attempt, base, max)
}

// fullJitter returns a random duration in [0, min(max, base·2^(attempt-1))].
func fullJitter(attempt int, base, max time.Duration) time.Duration {
	return jitterUpTo(backoffCeiling(attempt, base, max))
}

// backoffCeiling returns min(max, base·2^(attempt-1)) without overflowing.
func backoffCeiling(attempt int, base, max time.Duration) time.Duration {
	ceiling := base
	for i := 1; i < attempt && ceiling < max; i++ {
		ceiling *= 2
	}
	return min(ceiling, max)
}

// jitterUpTo returns a random duration in [0, d].
func jitterUpTo(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}
