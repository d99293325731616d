package wsstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The fault tests change shared stack state: each clears what it injected.

func TestAPIFailNext(t *testing.T) {
	t.Cleanup(testStack.API.ClearFaults)
	for _, status := range []int{401, 403, 426, 429, 500, 502, 504} {
		before := testStack.API.Stats()
		testStack.API.FailNext(2, status)
		for i := range 2 {
			got, hdr, body := getCreds(t, "GET", credsPath("acme", "alpha"), tokenA)
			if got != status {
				t.Fatalf("injected %d, request %d got %d: %s", status, i, got, body)
			}
			var env ErrorEnvelope
			if err := json.Unmarshal(body, &env); err != nil || env.Code != status || env.Type == "" || env.Detail == "" {
				t.Errorf("status %d: envelope %+v (%v)", status, env, err)
			}
			if ra := hdr.Get("Retry-After"); (status == 429) != (ra != "") {
				t.Errorf("status %d: Retry-After %q", status, ra)
			}
		}
		mint(t, "acme", "alpha", tokenA) // the third succeeds
		after := testStack.API.Stats()
		if after.ByStatus[status]-before.ByStatus[status] != 2 || after.Requests-before.Requests != 3 {
			t.Errorf("status %d: counters before %+v after %+v", status, before, after)
		}
	}
}

func TestAPIRetryAfterDate(t *testing.T) {
	t.Cleanup(testStack.API.ClearFaults)
	date := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	testStack.API.InjectNext(1, Fault{Kind: FaultStatus, Status: 429, RetryAfter: date})
	_, hdr, _ := getCreds(t, "GET", credsPath("acme", "alpha"), tokenA)
	if hdr.Get("Retry-After") != date {
		t.Errorf("Retry-After %q, want %q", hdr.Get("Retry-After"), date)
	}
}

func TestAPIMalformedAnswers(t *testing.T) {
	t.Cleanup(testStack.API.ClearFaults)
	testStack.API.InjectNext(1, Fault{Kind: FaultMalformedJSON})
	testStack.API.InjectNext(1, Fault{Kind: FaultTruncatedJSON})
	testStack.API.InjectNext(1, Fault{Kind: FaultWrongScope, Bucket: "elsewhere", Prefix: "acme/beta/"})
	for _, name := range []string{"malformed", "truncated"} {
		status, _, body := getCreds(t, "GET", credsPath("acme", "alpha"), tokenA)
		var v map[string]any
		if status != 200 || json.Unmarshal(body, &v) == nil {
			t.Errorf("%s: status %d, body parses as JSON: %s", name, status, body)
		}
	}
	c := mint(t, "acme", "alpha", tokenA)
	if c.Bucket != "elsewhere" || c.Prefix != "acme/beta/" {
		t.Errorf("wrong scope fault gave %s/%s", c.Bucket, c.Prefix)
	}
	// The credentials are still alpha's: the server keeps them in alpha.
	cl := clientFor(c)
	_, err := cl.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(DefaultBucket), Prefix: aws.String("acme/beta/")})
	if errorCode(err) != "AccessDenied" {
		t.Errorf("wrong-scope credentials listing beta: %v, want AccessDenied", err)
	}
}

func TestAPILatencyAndHang(t *testing.T) {
	t.Cleanup(testStack.API.ClearFaults)
	testStack.API.SetLatency(300 * time.Millisecond)
	start := time.Now()
	mint(t, "acme", "alpha", tokenA)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("answer after %v with 300ms latency", d)
	}
	testStack.API.SetLatency(0)

	testStack.API.HangFor(5 * time.Second)
	cl := &http.Client{Timeout: 300 * time.Millisecond}
	req, _ := http.NewRequest("GET", testStack.APIURL()+credsPath("acme", "alpha"), nil)
	req.Header.Set("Authorization", "Bearer "+tokenA)
	_, err := cl.Do(req)
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("request during hang: %v, want a timeout", err)
	}
}

func TestAPIDownRefusesConnections(t *testing.T) {
	if err := testStack.TakeAPIDown(700 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	_, err := http.Get(testStack.APIURL() + credsPath("acme", "alpha"))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("request while down: %v, want connection refused", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		req, _ := http.NewRequest("GET", testStack.APIURL()+credsPath("acme", "alpha"), nil)
		req.Header.Set("Authorization", "Bearer "+tokenA)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("after outage: status %d", resp.StatusCode)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("API did not come back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestS3FaultsAndCounts(t *testing.T) {
	ctx := context.Background()
	t.Cleanup(testStack.S3.ClearFaults)
	c := mint(t, "acme", "beta", tokenB)
	cl := clientFor(c) // no retries: every injected error is seen
	key := c.Prefix + "faults/obj.txt"

	testStack.S3.ResetCounts()
	put := func() error {
		_, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: &c.Bucket, Key: &key, Body: strings.NewReader("data")})
		return err
	}
	if err := put(); err != nil {
		t.Fatal(err)
	}
	testStack.S3.Inject(S3Fault{Ops: []Op{OpPut}, Status: 503, Times: 1})
	if err := put(); errorCode(err) != "SlowDown" {
		t.Errorf("injected 503: %v, want SlowDown", err)
	}
	if err := put(); err != nil {
		t.Errorf("fault applied more than Times: %v", err)
	}
	testStack.S3.Inject(S3Fault{Ops: []Op{OpGet}, KeyContains: "faults/", Status: 500, Times: 1})
	if _, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: &c.Bucket, Key: &key}); errorCode(err) != "InternalError" {
		t.Errorf("injected 500: %v, want InternalError", err)
	}
	testStack.S3.Inject(S3Fault{Ops: []Op{OpHead}, Stall: 2 * time.Second, Times: 1})
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := cl.HeadObject(sctx, &s3.HeadObjectInput{Bucket: &c.Bucket, Key: &key})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("stalled HEAD: %v, want deadline exceeded", err)
	}
	testStack.S3.Inject(S3Fault{Ops: []Op{OpList}, Reset: true, Times: 1})
	if _, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &c.Bucket, Prefix: &c.Prefix}); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reset LIST: %v, want a connection reset", err)
	}
	if _, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &c.Bucket, Prefix: &c.Prefix}); err != nil {
		t.Fatal(err)
	}
	dst := c.Prefix + "faults/copy.txt"
	if _, err := cl.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &c.Bucket, Key: &dst, CopySource: aws.String(c.Bucket + "/" + key)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &c.Bucket, Key: &dst}); err != nil {
		t.Fatal(err)
	}
	mpu, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &c.Bucket, Key: &dst})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: &c.Bucket, Key: &dst, UploadId: mpu.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("p"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &c.Bucket, Key: &dst, UploadId: mpu.UploadId}); err != nil {
		t.Fatal(err)
	}
	want := map[Op]uint64{OpPut: 3, OpGet: 1, OpHead: 1, OpList: 2, OpCopy: 1, OpDelete: 1, OpCreateMultipart: 1, OpUploadPart: 1, OpAbortMultipart: 1}
	got := testStack.S3.Counts()
	for op, n := range want {
		if got[op] != n {
			t.Errorf("count %s = %d, want %d (all: %v)", op, got[op], n, got)
		}
	}
	if r := testStack.S3.Retries(); len(r) != 0 {
		t.Errorf("requests of a client without retries counted as retries: %v", r)
	}
}

// TestRetriesCounted: a request the SDK sends again counts as a request
// and as a retry, so a test can tell what the mount chose to send from
// what a fault or a busy machine made the SDK repeat.
func TestRetriesCounted(t *testing.T) {
	ctx := context.Background()
	t.Cleanup(testStack.S3.ClearFaults)
	c := mint(t, "acme", "beta", tokenB)
	cl := s3.New(s3.Options{
		BaseEndpoint: aws.String(c.Endpoint), Region: c.Region, UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		}),
	})
	key := c.Prefix + "retries/obj.txt"
	testStack.S3.ResetCounts()
	testStack.S3.Inject(S3Fault{Ops: []Op{OpPut}, Status: 503, Times: 1})
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: &c.Bucket, Key: &key, Body: strings.NewReader("data")}); err != nil {
		t.Fatalf("put with one injected 503 and retries: %v", err)
	}
	if n, r := testStack.S3.Counts()[OpPut], testStack.S3.Retries()[OpPut]; n != 2 || r != 1 {
		t.Errorf("a PUT retried once: counted %d, retries %d; want 2 and 1", n, r)
	}
}

func TestClassifyS3(t *testing.T) {
	tests := []struct {
		method, target string
		copySrc        bool
		want           Op
	}{
		{"GET", "/b/k", false, OpGet},
		{"GET", "/b?list-type=2&prefix=p", false, OpList},
		{"GET", "/b/", false, OpList},
		{"GET", "/b/k?uploadId=1", false, OpListParts},
		{"HEAD", "/b/k", false, OpHead},
		{"PUT", "/b/k", false, OpPut},
		{"PUT", "/b/k", true, OpCopy},
		{"PUT", "/b/k?partNumber=1&uploadId=x", false, OpUploadPart},
		{"PUT", "/b/k?partNumber=1&uploadId=x", true, OpUploadPartCopy},
		{"PUT", "/b?policy", false, OpOther},
		{"POST", "/b/k?uploads", false, OpCreateMultipart},
		{"POST", "/b/k?uploadId=x", false, OpCompleteMultipart},
		{"POST", "/b?delete", false, OpDeleteObjects},
		{"DELETE", "/b/k", false, OpDelete},
		{"DELETE", "/b/k?uploadId=x", false, OpAbortMultipart},
		{"DELETE", "/b", false, OpOther},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest(tt.method, "http://h"+tt.target, nil)
		if tt.copySrc {
			r.Header.Set("X-Amz-Copy-Source", "b/src")
		}
		if got := ClassifyS3(r); got != tt.want {
			t.Errorf("%s %s copy=%v: %s, want %s", tt.method, tt.target, tt.copySrc, got, tt.want)
		}
	}
}

// TestClearRemovesEveryFault injects every fault kind the control port knows
// (as "ws-dev fault" does), clears, and checks that none is left in force.
func TestClearRemovesEveryFault(t *testing.T) {
	t.Cleanup(func() {
		if err := testStack.ClearFaults(); err != nil {
			t.Error(err)
		}
	})
	srv := httptest.NewServer(ControlHandler(testStack))
	defer srv.Close()
	post := func(body string) string {
		t.Helper()
		resp, err := http.Post(srv.URL+"/fault", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, msg)
		}
		return string(msg)
	}
	before := mint(t, "acme", "alpha", tokenA)
	for _, body := range []string{
		`{"api_fail":{"status":503,"count":5}}`,
		`{"api_body":{"kind":"malformed","count":2}}`,
		`{"api_body":{"kind":"truncated","count":2}}`,
		`{"api_wrong_scope":{"bucket":"elsewhere","prefix":"x/","count":2}}`,
		`{"api_latency":"5s"}`,
		`{"api_hang":"30s"}`,
		`{"ttl":"3s"}`,
		`{"revoke":"` + before.AccessKeyID + `"}`,
		`{"s3_fault":{"status":503}}`,
		`{"s3_fault":{"stall":"30s"}}`,
		`{"api_down":"30s"}`,
	} {
		post(body)
	}
	if msg := post(`{"clear":true}`); !strings.Contains(msg, "cleared") {
		t.Errorf("clear answered %q", msg)
	}

	// Every call below would fail or time out if a fault were left.
	start := time.Now()
	cl := &http.Client{Timeout: 2 * time.Second}
	for i := range 3 { // more than one: no queued fault either
		req, _ := http.NewRequest("GET", testStack.APIURL()+credsPath("acme", "alpha"), nil)
		req.Header.Set("Authorization", "Bearer "+tokenA)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("request %d after clear: %v", i, err)
		}
		var c CredentialsResponse
		err = json.NewDecoder(resp.Body).Decode(&c)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("request %d after clear: status %d, decode %v", i, resp.StatusCode, err)
		}
		if c.Bucket != DefaultBucket || c.Prefix != "acme/alpha/" {
			t.Errorf("request %d after clear: scope %s/%s", i, c.Bucket, c.Prefix)
		}
		exp, err := time.Parse(time.RFC3339, c.Expiration)
		if ttl := time.Until(exp); err != nil || ttl < 59*time.Minute || ttl > time.Hour+time.Minute {
			t.Errorf("request %d after clear: expiration %q (%v), want the stack's TTL of 1h", i, c.Expiration, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = clientFor(c).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &c.Bucket, Prefix: &c.Prefix})
		cancel()
		if err != nil {
			t.Errorf("request %d after clear: S3 list: %v", i, err)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("calls after clear took %v: latency or a hang left in force", d)
	}
}
