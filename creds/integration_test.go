package creds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"mount-ws/internal/wsstack"
)

// s3Workload makes S3 requests of several kinds in a loop until stop, and
// reports each outcome to record (time and error).
func s3Workload(t *testing.T, client *s3.Client, sc Scope, worker int, stop <-chan struct{}, record func(time.Time, error)) {
	ctx := context.Background()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		key := fmt.Sprintf("%sworker%d/obj%d", sc.Prefix, worker, i%5)
		var err error
		switch i % 4 {
		case 0:
			_, err = client.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String(sc.Bucket), Key: aws.String(key),
				Body: bytes.NewReader(bytes.Repeat([]byte{byte(i)}, 1024)),
			})
		case 1:
			var out *s3.GetObjectOutput
			if out, err = client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(sc.Bucket), Key: aws.String(key)}); err == nil {
				_, err = io.Copy(io.Discard, out.Body)
				out.Body.Close()
			} else if isNotFound(err) {
				err = nil // not written yet in this run
			}
		case 2:
			_, err = client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(sc.Bucket), Key: aws.String(key)})
			if isNotFound(err) {
				err = nil
			}
		case 3:
			_, err = client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(sc.Bucket), Prefix: aws.String(sc.Prefix)})
		}
		record(time.Now(), err)
		time.Sleep(5 * time.Millisecond)
	}
}

func isNotFound(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchKey" || ae.ErrorCode() == "NotFound")
}

// Credentials living 3 s, S3 requests without pause for 20 s: every request
// succeeds, and the API sees about one call per refresh interval.
func TestStackContinuousRequests(t *testing.T) {
	const ttl, run = 3 * time.Second, 20 * time.Second
	stack := needStack(t, ttl)
	logger, logs := newLogger()
	cfg := stackConfig(stack, stackWS, testToken)
	cfg.Logger = logger
	before := stack.API.Stats().Minted
	p, err := NewProvider(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// One SDK attempt per call: a credential problem cannot hide in retries.
	client := newS3Client(p, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })

	var mu sync.Mutex
	var ok int
	var failures []error
	secrets := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			s3Workload(t, client, p.Scope(), w, stop, func(_ time.Time, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, err)
					return
				}
				ok++
			})
		})
	}
	wg.Go(func() { // note every secret handed out, to search the logs for them
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			c, err := p.Retrieve(context.Background())
			if err == nil {
				mu.Lock()
				secrets[c.SecretAccessKey], secrets[c.SessionToken] = true, true
				mu.Unlock()
			}
		}
	})
	time.Sleep(run)
	close(stop)
	wg.Wait()

	for i, err := range failures {
		if i < 5 {
			t.Errorf("request failed: %v", err)
		}
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed", len(failures), ok+len(failures))
	}
	// Lifetimes are 2–3 s (the emulator truncates expirations to seconds);
	// the refresh comes after 40–50% of the lifetime.
	minted := stack.API.Stats().Minted - before
	lo, hi := int(run/(ttl/2))-2, int(run/(2*time.Second*4/10))+2
	st := p.Stats()
	t.Logf("%d S3 requests, %d API calls, stats %+v", ok, minted, st)
	if minted < lo || minted > hi {
		t.Errorf("API minted %d credentials in %v, want %d..%d", minted, run, lo, hi)
	}
	if minted*20 > ok {
		t.Errorf("%d API calls for %d S3 requests: not refreshing ahead", minted, ok)
	}
	if st.ReactiveRetries > 5 {
		t.Errorf("%d reactive retries: refresh-ahead should make them rare", st.ReactiveRetries)
	}
	for s := range secrets {
		if s != "" && strings.Contains(logs.String(), s) {
			t.Errorf("a secret handed out appears in the logs")
		}
	}
	assertNoSecrets(t, "logs", logs.String())
}

// The API is down for longer than one TTL: requests fail only while no
// valid credentials exist, and recover by themselves.
func TestStackAPIOutage(t *testing.T) {
	const ttl = 2 * time.Second
	stack := needStack(t, ttl)
	logger, logs := newLogger()
	cfg := stackConfig(stack, stackWS, testToken)
	cfg.Logger = logger
	cfg.ExpiredWaitBound = 300 * time.Millisecond
	p, err := newProvider(context.Background(), cfg, func(p *Provider) {
		p.backoffBase, p.backoffMax = 50*time.Millisecond, 300*time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	client := newS3Client(p, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })

	type outcome struct {
		at  time.Time
		err error
	}
	var mu sync.Mutex
	var outcomes []outcome
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			s3Workload(t, client, p.Scope(), w, stop, func(at time.Time, err error) {
				mu.Lock()
				defer mu.Unlock()
				outcomes = append(outcomes, outcome{at, err})
			})
		})
	}
	time.Sleep(time.Second)
	held, _ := p.Retrieve(context.Background())
	downAt := time.Now()
	const down = 4 * time.Second
	if err := stack.TakeAPIDown(down); err != nil {
		t.Fatal(err)
	}
	upAt := downAt.Add(down)
	time.Sleep(down + 3*time.Second)
	close(stop)
	wg.Wait()

	var failed, after int
	var firstFail, lastFail time.Time
	for _, o := range outcomes {
		if o.err == nil {
			if o.at.After(upAt.Add(2 * time.Second)) {
				after++
			}
			continue
		}
		failed++
		if firstFail.IsZero() {
			firstFail = o.at
		}
		lastFail = o.at
		if !errors.Is(o.err, ErrExpired) || !errors.Is(o.err, ErrUnavailable) {
			t.Errorf("failure = %v, want ErrExpired wrapping ErrUnavailable", o.err)
		}
	}
	t.Logf("%d requests, %d failed between %v and %v after the API went down (held credentials expired at +%v); %d succeeded after recovery",
		len(outcomes), failed, firstFail.Sub(downAt), lastFail.Sub(downAt), held.Expires.Sub(downAt), after)
	if failed == 0 {
		t.Fatal("no request failed during an outage longer than the TTL")
	}
	// Failures only in the window without valid credentials.
	if firstFail.Before(held.Expires.Add(-ttl / 5)) {
		t.Errorf("first failure %v before the held credentials stopped being valid (%v)", firstFail, held.Expires)
	}
	if lastFail.After(upAt.Add(2 * time.Second)) {
		t.Errorf("still failing %v after the API came back", lastFail.Sub(upAt))
	}
	if after == 0 {
		t.Error("no request succeeded after recovery")
	}
	if n := logs.count("cannot be refreshed"); n != 1 {
		t.Errorf("%d outage log lines, want 1", n)
	}
	assertNoSecrets(t, "logs", logs.String())
}

// A key revoked before its expiration: the next request refreshes and succeeds.
func TestStackRevokedKey(t *testing.T) {
	stack := needStack(t, time.Hour)
	p, err := NewProvider(context.Background(), stackConfig(stack, stackWS, testToken))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	sc := p.Scope()
	client := newS3Client(p, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })
	ctx := context.Background()
	key := aws.String(sc.Prefix + "revoke/obj")
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(sc.Bucket), Key: key, Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	ops := []struct {
		name string
		do   func() error
	}{
		{"GetObject", func() error {
			out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(sc.Bucket), Key: key})
			if err == nil {
				out.Body.Close()
			}
			return err
		}},
		{"HeadObject", func() error { // 403 without a body
			_, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(sc.Bucket), Key: key})
			return err
		}},
		{"PutObject", func() error {
			_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(sc.Bucket), Key: key, Body: strings.NewReader("y")})
			return err
		}},
		{"ListObjectsV2", func() error {
			_, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(sc.Bucket), Prefix: aws.String(sc.Prefix)})
			return err
		}},
	}
	for i, op := range ops {
		c, _ := p.Retrieve(ctx)
		if !stack.Revoke(c.AccessKeyID) {
			t.Fatalf("%s: stack does not know key %s", op.name, c.AccessKeyID)
		}
		if err := op.do(); err != nil {
			t.Errorf("%s after revocation: %v", op.name, err)
		}
		c2, _ := p.Retrieve(ctx)
		if c2.AccessKeyID == c.AccessKeyID {
			t.Errorf("%s: still holding the revoked key", op.name)
		}
		if st := p.Stats(); st.Invalidations != uint64(i+1) || st.ReactiveRetries != uint64(i+1) {
			t.Errorf("%s: stats %+v", op.name, st)
		}
	}
}

// Answers and faults of the emulator, each mapped to its error.
func TestStackAPIErrors(t *testing.T) {
	stack := needStack(t, time.Hour)
	tests := []struct {
		name  string
		setup func()
		cfg   func(*Config)
		want  error
		text  string
	}{
		{name: "wrong token", cfg: func(c *Config) { c.TokenSource = StaticToken("wrong-token", "token file /tmp/tok") }, want: ErrUnauthorized, text: "rejected the token from token file /tmp/tok"},
		{name: "no access", cfg: func(c *Config) { c.Workspace = "other" }, want: ErrForbidden, text: "no access to workspace acme/other"},
		{name: "unknown workspace", cfg: func(c *Config) { c.Workspace = "nope" }, want: ErrNotFound, text: "workspace acme/nope does not exist"},
		{name: "slug refused by API", cfg: func(c *Config) { c.Org = "ACME" }, want: ErrRefused, text: "422"},
		{name: "426", setup: func() { stack.API.FailNext(1, 426) }, want: ErrUpgradeRequired, text: "upgrade mount-ws"},
		{name: "409", setup: func() { stack.API.FailNext(1, 409) }, want: ErrRefused, text: "409"},
		{name: "malformed", setup: func() { stack.API.InjectNext(1, wsstack.Fault{Kind: wsstack.FaultMalformedJSON}) }, want: ErrInvalidResponse, text: "not a JSON object"},
		{name: "truncated", setup: func() { stack.API.InjectNext(1, wsstack.Fault{Kind: wsstack.FaultTruncatedJSON}) }, want: ErrInvalidResponse, text: "not a JSON object"},
		{name: "502 then ok", setup: func() { stack.API.FailNext(2, 502) }},
		{name: "429 then ok", setup: func() { stack.API.FailNext(1, 429) }},
		{name: "504 too long", setup: func() { stack.API.FailNext(1000, 504) }, cfg: func(c *Config) { c.MountRetryBound = 500 * time.Millisecond }, want: ErrUnavailable, text: "gave up after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stack.API.ClearFaults()
			defer stack.API.ClearFaults()
			if tt.setup != nil {
				tt.setup()
			}
			cfg := stackConfig(stack, stackWS, testToken)
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			p, err := NewProvider(context.Background(), cfg)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				p.Close()
				return
			}
			if err == nil {
				p.Close()
				t.Fatalf("no error, want %v", tt.want)
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("err = %v; want %v containing %q", err, tt.want, tt.text)
			}
			assertNoSecrets(t, "error", err.Error())
		})
	}
}

// A refresh naming another prefix is refused and the held credentials stay
// in use.
func TestStackWrongScopeOnRefresh(t *testing.T) {
	stack := needStack(t, time.Hour)
	logger, logs := newLogger()
	cfg := stackConfig(stack, stackWS, testToken)
	cfg.Logger = logger
	cfg.ExpiredWaitBound = 200 * time.Millisecond
	p, err := NewProvider(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	held, _ := p.Retrieve(context.Background())
	// Every answer names the other prefix while Retrieve waits, so its
	// wait ends with the refusal as the reason.
	stack.API.InjectNext(1000, wsstack.Fault{Kind: wsstack.FaultWrongScope, Bucket: wsstack.DefaultBucket, Prefix: "acme/other/"})
	p.Invalidate(held.AccessKeyID)
	_, err = p.Retrieve(context.Background())
	if !errors.Is(err, ErrScopeChanged) || !errors.Is(err, ErrExpired) {
		t.Fatalf("err = %v, want ErrExpired with ErrScopeChanged as the last refresh error", err)
	}
	if st := p.Stats(); st.Failures[FailureScopeChanged] < 1 {
		t.Errorf("stats = %+v", st)
	}
	// Once the API names the pinned scope again, credentials come back.
	// (The refresh loop may be in its backoff: a few waits.)
	stack.API.ClearFaults()
	deadline := time.Now().Add(30 * time.Second)
	for _, err := p.Retrieve(context.Background()); err != nil; _, err = p.Retrieve(context.Background()) {
		if time.Now().After(deadline) {
			t.Fatalf("Retrieve 30 s after the API named the right scope again: %v", err)
		}
	}
	if p.Scope().Prefix != "acme/data/" {
		t.Errorf("scope = %+v", p.Scope())
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "acme/other/") {
		t.Errorf("not logged as an error:\n%s", logs)
	}
}

// A token rewritten on disk while mounted is used by the next fetch.
func TestStackTokenRotation(t *testing.T) {
	stack := needStack(t, time.Hour)
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const newToken = "rotated-token-for-stack"
	ws := wsstack.Workspace{Org: "acme", WS: "rotating", Tokens: []string{testToken}}
	if err := stack.AddWorkspace(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
	cfg := stackConfig(stack, ws, testToken)
	cfg.TokenSource = FileToken(path, nil)
	cfg.ExpiredWaitBound = 5 * time.Second
	// The stack cannot revoke a token, so a refresh with the old one would
	// succeed too: watch which token the refresh sends.
	sent := &bearerRecorder{rt: http.DefaultTransport}
	cfg.HTTPClient = &http.Client{Transport: sent}
	p, err := NewProvider(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	held, _ := p.Retrieve(context.Background())

	// The new token is granted and written to the file.
	ws.Tokens = []string{newToken}
	if err := stack.AddWorkspace(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(newToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.Invalidate(held.AccessKeyID)
	c, err := p.Retrieve(context.Background())
	if err != nil || c.AccessKeyID == held.AccessKeyID {
		t.Fatalf("after rotation: %v, %v", c.AccessKeyID, err)
	}
	if st := p.Stats(); st.Failures[FailureAuth] != 0 {
		t.Errorf("the refresh failed as unauthorized: %+v", st)
	}
	if sent.last() != newToken {
		t.Error("the refresh after the rotation did not send the token now in the file")
	}
}

// bearerRecorder keeps the bearer token of the last request it sent.
type bearerRecorder struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	token string
}

func (b *bearerRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	b.mu.Lock()
	b.token, _ = strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	b.mu.Unlock()
	return b.rt.RoundTrip(req)
}

func (b *bearerRecorder) last() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.token
}

// An API that accepts connections but never answers (a stuck load
// balancer): each refresh attempt times out, and the provider recovers once
// the API answers again.
func TestStackAPIHangs(t *testing.T) {
	stack := needStack(t, time.Hour)
	logger, logs := newLogger()
	cfg := stackConfig(stack, stackWS, testToken)
	cfg.Logger = logger
	cfg.RequestTimeout = 300 * time.Millisecond
	cfg.ExpiredWaitBound = 5 * time.Second
	p, err := newProvider(context.Background(), cfg, func(p *Provider) {
		p.backoffBase, p.backoffMax = 50*time.Millisecond, 200*time.Millisecond
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	held, _ := p.Retrieve(context.Background())
	const hang = 1500 * time.Millisecond
	stack.API.HangFor(hang)
	start := time.Now()
	p.Invalidate(held.AccessKeyID)
	c, err := p.Retrieve(context.Background())
	if err != nil || c.AccessKeyID == held.AccessKeyID {
		t.Fatalf("Retrieve = %v, %v", c.AccessKeyID, err)
	}
	if d := time.Since(start); d < hang || d > hang+2*time.Second {
		t.Errorf("fresh credentials after %v; the API hung for %v", d, hang)
	}
	st := p.Stats()
	if st.Failures[FailureUnavailable] == 0 || st.Failing {
		t.Errorf("stats = %+v", st)
	}
	if !strings.Contains(logs.String(), "no answer within 300ms") {
		t.Errorf("timeouts not logged:\n%s", logs)
	}
}
