package creds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// newS3Client builds the S3 client the way the bucket layer is expected to:
// endpoint and region from the pinned Scope, the Provider as credentials,
// reactive refresh installed.
func newS3Client(p *Provider, optFns ...func(*s3.Options)) *s3.Client {
	sc := p.Scope()
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(sc.Endpoint),
		Region:       sc.Region,
		UsePathStyle: true,
		Credentials:  p,
		APIOptions:   []func(*middleware.Stack) error{p.AddReactiveRefresh},
	}, optFns...)
}

// fakeS3 answers every request with 200 "hello" unless reject says
// otherwise for the signing key.
type fakeS3 struct {
	srv    *httptest.Server
	mu     sync.Mutex
	keys   []string // signing key of each request, in order
	bodies []string
	// reject returns "" to serve, an S3 error code to answer 403 with it,
	// or "RESET" to reset the connection.
	reject func(key string) string
}

// apiPointingAt is a fake workspace API whose credentials name fs3 as the
// storage endpoint, and the scope it hands out.
func apiPointingAt(t *testing.T, fs3 *fakeS3) (*fakeAPI, Scope) {
	api := newFakeAPI(t)
	sc := api.scope
	sc.Endpoint = fs3.srv.URL
	api.setScope(sc)
	return api, sc
}

func newFakeS3(t *testing.T, reject func(key string) string) *fakeS3 {
	f := &fakeS3{reject: reject}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := signingKeyID(r)
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.keys = append(f.keys, key)
		f.bodies = append(f.bodies, string(body))
		f.mu.Unlock()
		switch code := f.reject(key); code {
		case "":
			w.Header().Set("ETag", `"abc"`)
			_, _ = io.WriteString(w, "hello")
		case "RESET":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.(*net.TCPConn).SetLinger(0)
				_ = conn.Close()
			}
		default:
			status := http.StatusForbidden
			if code == "NoSuchKey" {
				status = http.StatusNotFound
			}
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(status)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>rejected</Message></Error>`, code)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeS3) seen() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...), append([]string(nil), f.bodies...)
}

func TestReactiveRefresh(t *testing.T) {
	const firstKey = "AKIATEST00000001"
	tests := []struct {
		name      string
		code      string        // how S3 rejects the first key
		jump      time.Duration // clock moved forward before the request (into the refresh window)
		put       bool
		wantOK    bool
		wantS3    int // requests S3 saw
		wantRetry uint64
	}{
		{name: "InvalidAccessKeyId", code: "InvalidAccessKeyId", wantOK: true, wantS3: 2, wantRetry: 1},
		{name: "ExpiredToken", code: "ExpiredToken", wantOK: true, wantS3: 2, wantRetry: 1},
		{name: "InvalidToken put", code: "InvalidToken", put: true, wantOK: true, wantS3: 2, wantRetry: 1},
		{name: "AccessDenied fresh", code: "AccessDenied", wantOK: true, wantS3: 2, wantRetry: 1}, // a probe: revoked keys look the same
		{name: "AccessDenied near expiry", code: "AccessDenied", jump: 50 * time.Minute, wantOK: true, wantS3: 2, wantRetry: 1},
		{name: "reset fresh", code: "RESET", wantOK: false, wantS3: 1, wantRetry: 0},
		{name: "reset near expiry put", code: "RESET", put: true, jump: 50 * time.Minute, wantOK: true, wantS3: 2, wantRetry: 1},
		{name: "NoSuchKey", code: "NoSuchKey", wantOK: false, wantS3: 1, wantRetry: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs3 := newFakeS3(t, func(key string) string {
				if key == firstKey {
					return tt.code
				}
				return ""
			})
			api := newFakeAPI(t)
			clock := &offsetClock{}
			api.setNow(clock.Now)
			var slow atomic.Bool
			api.setRespond(func(http.ResponseWriter, int64) bool {
				if slow.Load() {
					// Keep the background refresh in flight while the
					// request is signed with the first key.
					time.Sleep(300 * time.Millisecond)
				}
				return false
			})
			sc := api.scope
			sc.Endpoint = fs3.srv.URL
			api.setScope(sc)
			cfg := testConfig(api, nil)
			cfg.Clock = clock
			p := startProvider(t, cfg)
			slow.Store(true)
			clock.jump(tt.jump)
			// One attempt per SDK call: only the reactive middleware retries.
			client := newS3Client(p, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })

			var err error
			if tt.put {
				_, err = client.PutObject(context.Background(), &s3.PutObjectInput{
					Bucket: aws.String(sc.Bucket), Key: aws.String(sc.Prefix + "f"),
					Body: bytes.NewReader([]byte("payload-data")),
				})
			} else {
				var out *s3.GetObjectOutput
				out, err = client.GetObject(context.Background(), &s3.GetObjectInput{
					Bucket: aws.String(sc.Bucket), Key: aws.String(sc.Prefix + "f"),
				})
				if err == nil {
					b, _ := io.ReadAll(out.Body)
					out.Body.Close()
					if string(b) != "hello" {
						t.Errorf("body %q", b)
					}
				}
			}
			if (err == nil) != tt.wantOK {
				t.Fatalf("err = %v, want ok=%v", err, tt.wantOK)
			}
			if !tt.wantOK && tt.code != "RESET" {
				var ae smithy.APIError
				if !errors.As(err, &ae) || ae.ErrorCode() != tt.code {
					t.Errorf("err = %v, want the S3 error %s", err, tt.code)
				}
			}
			keys, bodies := fs3.seen()
			if len(keys) != tt.wantS3 {
				t.Fatalf("S3 saw keys %v, want %d requests", keys, tt.wantS3)
			}
			if keys[0] != firstKey {
				t.Errorf("first request signed with %s", keys[0])
			}
			if tt.wantS3 == 2 && keys[1] == firstKey {
				t.Errorf("retry signed with the rejected key")
			}
			if tt.put && tt.wantOK && !strings.Contains(bodies[len(bodies)-1], "payload-data") {
				t.Errorf("retried upload body %q", bodies[len(bodies)-1])
			}
			if st := p.Stats(); st.ReactiveRetries != tt.wantRetry {
				t.Errorf("ReactiveRetries = %d, want %d", st.ReactiveRetries, tt.wantRetry)
			}
		})
	}
}

// TestReactiveRefreshReplacementRejected: after a revocation, the
// credentials fetched in place of the rejected ones may be revoked too
// (issued just before it): the request is sent again until a key is
// accepted, a bounded number of times. Seen in CI as a read failing with
// InvalidAccessKeyId right after a workspace's keys were revoked.
func TestReactiveRefreshReplacementRejected(t *testing.T) {
	for _, tt := range []struct {
		rejected int // keys, from the first, that S3 rejects
		wantOK   bool
		wantS3   int
	}{
		{rejected: 2, wantOK: true, wantS3: 3},
		{rejected: 3, wantOK: true, wantS3: 4},
		{rejected: 10, wantOK: false, wantS3: 1 + maxReactiveRetries},
	} {
		t.Run(fmt.Sprintf("%d keys rejected", tt.rejected), func(t *testing.T) {
			fs3 := newFakeS3(t, func(key string) string {
				var n int
				if _, err := fmt.Sscanf(key, "AKIATEST%08d", &n); err == nil && n <= tt.rejected {
					return "InvalidAccessKeyId"
				}
				return ""
			})
			api, sc := apiPointingAt(t, fs3)
			p := startProvider(t, testConfig(api, nil))
			client := newS3Client(p, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })
			out, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(sc.Bucket), Key: aws.String(sc.Prefix + "f")})
			if err == nil {
				out.Body.Close()
			}
			if (err == nil) != tt.wantOK {
				t.Fatalf("err = %v, want ok=%v", err, tt.wantOK)
			}
			if keys, _ := fs3.seen(); len(keys) != tt.wantS3 || len(slices.Compact(slices.Clone(keys))) != len(keys) {
				t.Errorf("S3 saw keys %v, want %d requests, each signed with another key", keys, tt.wantS3)
			}
		})
	}
}

// Genuine denials away from expiry cost at most one refresh per refresh
// interval, however many requests are denied.
func TestReactiveRefreshDeniedAlways(t *testing.T) {
	fs3 := newFakeS3(t, func(string) string { return "AccessDenied" })
	api, sc := apiPointingAt(t, fs3)
	p := startProvider(t, testConfig(api, nil))
	client := newS3Client(p, func(o *s3.Options) { o.Retryer = aws.NopRetryer{} })
	for range 10 {
		_, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(sc.Bucket), Key: aws.String(sc.Prefix + "k")})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
			t.Fatalf("err = %v", err)
		}
	}
	if n := api.requests.Load(); n != 2 {
		t.Errorf("%d API requests for 10 denied requests, want 2", n)
	}
	if keys, _ := fs3.seen(); len(keys) != 11 {
		t.Errorf("S3 saw %d requests, want 11 (one retry)", len(keys))
	}
}

// Many requests rejected together cause one refresh.
func TestReactiveRefreshSingleFlight(t *testing.T) {
	const firstKey = "AKIATEST00000001"
	fs3 := newFakeS3(t, func(key string) string {
		if key == firstKey {
			return "ExpiredToken"
		}
		return ""
	})
	api, sc := apiPointingAt(t, fs3)
	p := startProvider(t, testConfig(api, nil))
	client := newS3Client(p)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := client.HeadObject(context.Background(), &s3.HeadObjectInput{
				Bucket: aws.String(sc.Bucket), Key: aws.String(fmt.Sprintf("%sk%d", sc.Prefix, i)),
			})
			if err != nil {
				t.Errorf("HeadObject: %v", err)
			}
		})
	}
	wg.Wait()
	if n := api.requests.Load(); n != 2 {
		t.Errorf("%d API requests, want 2", n)
	}
	if st := p.Stats(); st.Invalidations != 1 {
		t.Errorf("Invalidations = %d", st.Invalidations)
	}
}

func TestAddReactiveRefreshTwice(t *testing.T) {
	api := newFakeAPI(t)
	p := startProvider(t, testConfig(api, nil))
	stack := middleware.NewStack("op", func() any { return nil })
	for range 2 {
		if err := p.AddReactiveRefresh(stack); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(stack.String(), reactiveRefreshID); n != 1 {
		t.Errorf("installed %d times:\n%s", n, stack)
	}
}

func TestSigningKeyID(t *testing.T) {
	for _, tt := range []struct {
		auth, query, want string
	}{
		{"AWS4-HMAC-SHA256 Credential=AKIA123/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=abc", "", "AKIA123"},
		{"", "X-Amz-Credential=AKIA456%2F20260101%2Fus-east-1%2Fs3%2Faws4_request", "AKIA456"},
		{"", "", ""},
		{"Bearer x", "", ""},
	} {
		r, _ := http.NewRequest("GET", "http://h/b/k?"+tt.query, nil)
		if tt.auth != "" {
			r.Header.Set("Authorization", tt.auth)
		}
		if got := signingKeyID(r); got != tt.want {
			t.Errorf("signingKeyID(%q, %q) = %q", tt.auth, tt.query, got)
		}
	}
}
