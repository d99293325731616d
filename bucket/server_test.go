package bucket_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"mount-ws/bucket"
	"mount-ws/bucket/buckettest"
	"mount-ws/internal/detdata"
	"mount-ws/internal/wsstack"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Scoped credentials are refused outside the prefix by the server itself,
// not only by the client's key validation.
func TestServerRefusesOutsidePrefix(t *testing.T) {
	ctx := ctxFor(t)
	c := mint(t, testOrg, testWS, testToken)
	b, err := bucket.New(bucket.Config{
		Bucket: c.Bucket, Prefix: "", Endpoint: c.Endpoint, Region: c.Region,
		Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Inside its own prefix it works.
	own := c.Prefix + "scope/own.txt"
	if _, err := b.Put(ctx, own, strings.NewReader("x"), 1, bucket.Meta{}); err != nil {
		t.Fatalf("put under own prefix: %v", err)
	}
	other := "acme/other/x.txt"
	sibling := strings.TrimSuffix(c.Prefix, "/") + "-evil/x.txt"
	checks := map[string]error{}
	_, checks["put other workspace"] = b.Put(ctx, other, strings.NewReader("x"), 1, bucket.Meta{})
	_, checks["put sibling prefix"] = b.Put(ctx, sibling, strings.NewReader("x"), 1, bucket.Meta{})
	_, checks["put bucket root"] = b.Put(ctx, "root.txt", strings.NewReader("x"), 1, bucket.Meta{})
	_, checks["head other workspace"] = b.Head(ctx, other)
	_, checks["get other workspace"] = b.Get(ctx, other, 0, -1, "")
	_, _, checks["list bucket root"] = b.ListAll(ctx, "")
	_, _, checks["list other workspace"] = b.ListAll(ctx, "acme/other/")
	checks["delete other workspace"] = b.Delete(ctx, other)
	_, checks["copy out of prefix"] = b.Copy(ctx, own, other, nil, "")
	_, checks["upload other workspace"] = b.Upload(ctx, other, detdata.New(1, 6<<20), 6<<20, bucket.Meta{}, bucket.UploadOptions{PartSize: 5 << 20})
	for what, err := range checks {
		if !errors.Is(err, iofs.ErrPermission) {
			t.Errorf("%s: %v, want fs.ErrPermission", what, err)
		}
		if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, bucket.ErrCredentials) {
			t.Errorf("%s: %v also matches another class", what, err)
		}
	}
}

// recorder is an API option that records the headers of every request as
// sent (after signing), by operation.
type recorder struct {
	mu   sync.Mutex
	sent map[string][]http.Header
}

func (r *recorder) install(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("test/record", func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			r.mu.Lock()
			if r.sent == nil {
				r.sent = map[string][]http.Header{}
			}
			op := middleware.GetOperationName(ctx)
			r.sent[op] = append(r.sent[op], req.Header.Clone())
			r.mu.Unlock()
		}
		return next.HandleFinalize(ctx, in)
	}), middleware.After)
}

func (r *recorder) headers(op string) []http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent[op]
}

// Bodies go with UNSIGNED-PAYLOAD, without checksums and without Expect:
// 100-continue, and the gateway accepts them; GETs do not ask for
// checksums.
func TestRequestHeaders(t *testing.T) {
	rec := &recorder{}
	b := newGateway(t, func(c *bucket.Config) { c.APIOptions = append(c.APIOptions, rec.install) })
	ctx := ctxFor(t)

	// 3 MiB: above the SDK's 2 MiB Expect threshold.
	const size = 3 << 20
	// (No time bound: the Expect header checked below is what stalls.)
	if _, err := b.Put(ctx, "put.bin", detdata.New(1, size), size, bucket.Meta{}); err != nil {
		t.Fatal(err)
	}
	upSize := int64(11 << 20)
	obj, err := b.Upload(ctx, "up.bin", detdata.New(2, upSize), upSize, bucket.Meta{}, bucket.UploadOptions{PartSize: 5 << 20})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := b.Get(ctx, "up.bin", 0, -1, obj.ETag)
	if err != nil {
		t.Fatal(err)
	}
	if err := detdata.Verify(rc, 2, upSize); err != nil {
		t.Error(err)
	}
	rc.Close()
	if rc, err := b.Get(ctx, "put.bin", 100, 1000, ""); err != nil {
		t.Fatal(err)
	} else {
		rc.Close()
	}

	for _, op := range []string{"PutObject", "UploadPart"} {
		hs := rec.headers(op)
		if len(hs) == 0 {
			t.Errorf("no %s recorded", op)
		}
		for _, h := range hs {
			if got := h.Get("X-Amz-Content-Sha256"); got != "UNSIGNED-PAYLOAD" {
				t.Errorf("%s: X-Amz-Content-Sha256 %q, want UNSIGNED-PAYLOAD", op, got)
			}
			if got := h.Get("Expect"); got != "" {
				t.Errorf("%s: Expect %q", op, got)
			}
			for k := range h {
				if strings.HasPrefix(strings.ToLower(k), "x-amz-checksum-") || strings.EqualFold(k, "X-Amz-Sdk-Checksum-Algorithm") {
					t.Errorf("%s: checksum header %s", op, k)
				}
			}
		}
	}
	for _, h := range rec.headers("GetObject") {
		if got := h.Get("X-Amz-Checksum-Mode"); got != "" {
			t.Errorf("GetObject: X-Amz-Checksum-Mode %q", got)
		}
	}
}

// A ranged GET of an object stored with a full-object checksum returns
// the range, unchecked against that checksum.
func TestRangedGetOfChecksummedObject(t *testing.T) {
	ctx := ctxFor(t)
	cfg := gatewayConfig(t)
	b, err := bucket.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789"), 100_000)
	if _, err := stack.RootClient().PutObject(ctx, &s3.PutObjectInput{
		Bucket: &cfg.Bucket, Key: aws.String(cfg.Prefix + "sum.bin"), Body: bytes.NewReader(data),
		ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32,
	}); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]int64{{0, -1}, {5, 100}, {999_990, 100}} {
		rc, err := b.Get(ctx, "sum.bin", r[0], r[1], "")
		if err != nil {
			t.Fatalf("get %v: %v", r, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		end := int64(len(data))
		if r[1] >= 0 {
			end = min(end, r[0]+r[1])
		}
		if err != nil || !bytes.Equal(got, data[r[0]:end]) {
			t.Errorf("get %v: %d bytes, %v", r, len(got), err)
		}
	}
}

func fastRetryer(attempts int) func() aws.Retryer {
	return func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.MaxBackoff = 20 * time.Millisecond
			o.RateLimiter = ratelimit.None
		})
	}
}

func TestThrottling(t *testing.T) {
	ctx := ctxFor(t)
	b := newGateway(t, func(c *bucket.Config) { c.Retryer = fastRetryer(4) })
	if _, err := b.Put(ctx, "throttled-key", strings.NewReader("data"), 4, bucket.Meta{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.S3.ClearFaults)

	// Two SlowDowns, then success: retried by the SDK.
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpGet}, KeyContains: "throttled-key", Status: 503, Times: 2})
	before := stack.S3.Counts()[wsstack.OpGet]
	rc, err := b.Get(ctx, "throttled-key", 0, -1, "")
	if err != nil {
		t.Fatalf("get after two SlowDowns: %v", err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "data" {
		t.Errorf("got %q", got)
	}
	if n := stack.S3.Counts()[wsstack.OpGet] - before; n != 3 {
		t.Errorf("%d GETs, want 3", n)
	}

	// SlowDown on every attempt: ErrThrottled once the retries are spent.
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpHead, wsstack.OpPut}, KeyContains: "throttled-key", Status: 503})
	_, err = b.Head(ctx, "throttled-key")
	if !errors.Is(err, bucket.ErrThrottled) {
		t.Errorf("head under constant SlowDown: %v, want ErrThrottled", err)
	}
	_, err = b.Put(ctx, "throttled-key", strings.NewReader("data"), 4, bucket.Meta{})
	if !errors.Is(err, bucket.ErrThrottled) {
		t.Errorf("put under constant SlowDown: %v, want ErrThrottled", err)
	}
	stack.S3.ClearFaults()
}

// TestDefaultRetryerRetriesTransientErrors: TestThrottling uses a fast
// retryer of its own, so this one holds the retryer mount-ws really uses
// (Config.Retryer unset) to the README's promise: throttling and other
// transient errors are retried by the SDK before mount-ws sees them. One
// failure of each kind costs a backoff of at most 2 s.
func TestDefaultRetryerRetriesTransientErrors(t *testing.T) {
	ctx := ctxFor(t)
	b := newGateway(t)
	const key = "transient-key"
	if _, err := b.Put(ctx, key, strings.NewReader("data"), 4, bucket.Meta{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.S3.ClearFaults)
	for _, tt := range []struct {
		name  string
		fault wsstack.S3Fault
	}{
		{"503 SlowDown", wsstack.S3Fault{Status: 503}},
		{"500 InternalError", wsstack.S3Fault{Status: 500}},
		// net/http itself may retry a GET reset on a reused connection.
		{"connection reset", wsstack.S3Fault{Reset: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fault
			f.Ops, f.KeyContains, f.Times = []wsstack.Op{wsstack.OpGet}, key, 1
			stack.S3.Inject(f)
			before := stack.S3.Counts()[wsstack.OpGet]
			rc, err := b.Get(ctx, key, 0, -1, "")
			if err != nil {
				t.Fatalf("get after one %s: %v, want it retried", tt.name, err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if string(got) != "data" {
				t.Errorf("got %q", got)
			}
			if n := stack.S3.Counts()[wsstack.OpGet] - before; n != 2 {
				t.Errorf("%d GETs, want 2 (the failed one and its retry)", n)
			}
			stack.S3.ClearFaults()
		})
	}
}

func TestCredentialsErrors(t *testing.T) {
	ctx := ctxFor(t)
	cfg := gatewayConfig(t)

	// The provider fails: classified, the provider's error kept, no request
	// sent, and the provider asked once: it has waited as long as it
	// should, and the connection error it wraps must not make the SDK's
	// retryer ask (and wait) again.
	boom := fmt.Errorf("workspace API down: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	var asked atomic.Int32
	failing := cfg
	failing.Credentials = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		asked.Add(1)
		return aws.Credentials{}, boom
	})
	b, err := bucket.New(failing)
	if err != nil {
		t.Fatal(err)
	}
	before := stack.S3.Counts()[wsstack.OpHead]
	_, err = b.Head(ctx, "x")
	if !errors.Is(err, bucket.ErrCredentials) || !errors.Is(err, boom) {
		t.Errorf("head with a failing provider: %v, want ErrCredentials wrapping the provider's error", err)
	}
	if errors.Is(err, iofs.ErrPermission) || errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("credentials error also matches another class: %v", err)
	}
	if n := stack.S3.Counts()[wsstack.OpHead] - before; n != 0 {
		t.Errorf("%d HEADs sent without credentials", n)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the failing provider was asked %d times for one HEAD, want 1 (no retries)", n)
	}

	// The server refuses revoked credentials.
	c := mint(t, testOrg, testWS, testToken)
	revoked := cfg
	revoked.Credentials = credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
	b, err = bucket.New(revoked)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.ListAll(ctx, ""); err != nil {
		t.Fatalf("list before revoking: %v", err)
	}
	stack.Revoke(c.AccessKeyID)
	_, _, err = b.ListAll(ctx, "")
	if !errors.Is(err, bucket.ErrCredentials) {
		t.Errorf("list with revoked credentials: %v, want ErrCredentials", err)
	}
}

// Keys that could escape the prefix never cause a request.
func TestInvalidKeyMakesNoRequest(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	b, err := bucket.New(bucket.Config{
		Bucket: "b", Prefix: "org/ws/", Endpoint: srv.URL, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	for _, k := range buckettest.BadKeys() {
		b.Head(ctx, k)
		b.Get(ctx, k, 0, -1, "")
		b.Put(ctx, k, strings.NewReader("x"), 1, bucket.Meta{})
		b.Upload(ctx, k, strings.NewReader("x"), 1, bucket.Meta{}, bucket.UploadOptions{})
		b.AbortUpload(ctx, k, "id")
		b.Copy(ctx, k, "ok", nil, "")
		b.Copy(ctx, "ok", k, nil, "")
		b.Delete(ctx, k)
	}
	for _, d := range buckettest.BadDirs() {
		b.List(ctx, d, "")
		b.ListAll(ctx, d)
		b.ListRecursive(ctx, d, func(bucket.Object) error { return nil })
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests sent for invalid keys", n)
	}
	// The server is reachable: a valid key does make a request.
	b.Delete(ctx, "ok")
	if requests.Load() == 0 {
		t.Error("no request for a valid key")
	}
}

func TestCancelledContext(t *testing.T) {
	b := newGateway(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.Head(ctx, "x")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("head with a cancelled context: %v", err)
	}
	for _, class := range []error{iofs.ErrNotExist, iofs.ErrPermission, bucket.ErrCredentials, bucket.ErrThrottled, bucket.ErrPrecondition} {
		if errors.Is(err, class) {
			t.Errorf("cancelled: %v matches %v", err, class)
		}
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := bucket.Config{Bucket: "b", Prefix: "p/", Region: "r", Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")}
	tests := map[string]func(*bucket.Config){
		"no bucket":         func(c *bucket.Config) { c.Bucket = "" },
		"no region":         func(c *bucket.Config) { c.Region = "" },
		"no credentials":    func(c *bucket.Config) { c.Credentials = nil },
		"prefix without /":  func(c *bucket.Config) { c.Prefix = "p" },
		"prefix with ..":    func(c *bucket.Config) { c.Prefix = "p/../" },
		"prefix with empty": func(c *bucket.Config) { c.Prefix = "p//" },
		"absolute prefix":   func(c *bucket.Config) { c.Prefix = "/p/" },
	}
	for name, mutate := range tests {
		cfg := good
		mutate(&cfg)
		if _, err := bucket.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := bucket.New(good); err != nil {
		t.Errorf("good config: %v", err)
	}
}

// The fake holds keys the gateway cannot, and listings return them as
// they are, for the layers above to decide.
func TestFakeOddKeys(t *testing.T) {
	b, rawPut := buckettest.NewFake(t)
	long := strings.Repeat("n", 300)
	for _, k := range []string{"a//b", "x", "x/y", long, "dots/../up", "dots/./here"} {
		rawPut(k, []byte(k))
	}
	ctx := ctxFor(t)
	objs, prefixes, err := b.ListAll(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Key)
	}
	if want := []string{long, "x"}; !slices.Equal(names, want) {
		t.Errorf("objects %q, want %q", names, want)
	}
	if want := []string{"a/", "dots/", "x/"}; !slices.Equal(prefixes, want) {
		t.Errorf("prefixes %q, want %q", prefixes, want)
	}
	objs, prefixes, err = b.ListAll(ctx, "a/")
	if err != nil || len(objs) != 0 || !slices.Equal(prefixes, []string{"a//"}) {
		t.Errorf("list a/: %v %q %v", objs, prefixes, err)
	}
	var all []string
	if err := b.ListRecursive(ctx, "dots/", func(o bucket.Object) error { all = append(all, o.Key); return nil }); err != nil || !slices.Equal(all, []string{"dots/../up", "dots/./here"}) {
		t.Errorf("recursive dots/: %q, %v", all, err)
	}
	// Reading them by key is refused client-side, but a normal key works.
	if _, err := b.Head(ctx, "a//b"); !errors.Is(err, bucket.ErrInvalidKey) {
		t.Errorf("head a//b: %v", err)
	}
	if obj, err := b.Head(ctx, long); err != nil || obj.Size != 300 {
		t.Errorf("head of a 300-byte name: %+v, %v", obj, err)
	}
	if rc, err := b.Get(ctx, "x/y", 0, -1, ""); err != nil {
		t.Error(err)
	} else {
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != "x/y" {
			t.Errorf("x/y holds %q", got)
		}
	}
}

// A server that ignores Range and answers 200 with the whole object still
// gives the caller the range it asked for.
func TestGetWhenServerIgnoresRange(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"e"`)
		io.WriteString(w, "0123456789")
	}))
	t.Cleanup(srv.Close)
	b, err := bucket.New(bucket.Config{
		Bucket: "b", Prefix: "p/", Endpoint: srv.URL, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		off, n int64
		want   string
	}{{0, -1, "0123456789"}, {0, 3, "012"}, {4, 3, "456"}, {8, -1, "89"}, {8, 5, "89"}, {20, 5, ""}} {
		rc, err := b.Get(ctxFor(t), "k", tt.off, tt.n, "")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(got) != tt.want {
			t.Errorf("get(%d, %d) = %q, %v; want %q", tt.off, tt.n, got, err, tt.want)
		}
	}
}

// A part the server keeps failing makes Upload abort the upload: nothing
// is left behind for the bucket to bill.
func TestUploadAbortsOnServerFailure(t *testing.T) {
	ctx := ctxFor(t)
	cfg := gatewayConfig(t)
	cfg.Retryer = fastRetryer(2)
	b, err := bucket.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.S3.ClearFaults)
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpUploadPart}, KeyContains: "part-fails", Status: 500})
	aborts := stack.S3.Counts()[wsstack.OpAbortMultipart]
	var id string
	size := int64(11 << 20)
	_, err = b.Upload(ctx, "part-fails.bin", detdata.New(1, size), size, bucket.Meta{},
		bucket.UploadOptions{PartSize: 5 << 20, OnCreate: func(u string) { id = u }})
	stack.S3.ClearFaults()
	if err == nil {
		t.Fatal("upload succeeded with every part failing")
	}
	if n := stack.S3.Counts()[wsstack.OpAbortMultipart] - aborts; n != 1 {
		t.Errorf("%d aborts, want 1", n)
	}
	_, err = stack.RootClient().ListParts(ctx, &s3.ListPartsInput{
		Bucket: &cfg.Bucket, Key: aws.String(cfg.Prefix + "part-fails.bin"), UploadId: &id,
	})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "NoSuchUpload" {
		t.Errorf("list parts of the failed upload: %v, want NoSuchUpload", err)
	}
	if _, err := b.Head(ctx, "part-fails.bin"); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("head after the failed upload: %v", err)
	}
	var left *bucket.UploadLeftError
	if errors.As(err, &left) {
		t.Errorf("aborted upload reported as left behind: %v", err)
	}

	// When the abort fails too, the error says which upload is left, and
	// AbortUpload can remove it later.
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpUploadPart, wsstack.OpAbortMultipart}, KeyContains: "part-fails", Status: 500})
	_, err = b.Upload(ctx, "part-fails.bin", detdata.New(1, size), size, bucket.Meta{},
		bucket.UploadOptions{PartSize: 5 << 20, OnCreate: func(u string) { id = u }})
	stack.S3.ClearFaults()
	if !errors.As(err, &left) || left.UploadID != id || left.Key != "part-fails.bin" {
		t.Fatalf("upload failing and abort failing: %v, want an *UploadLeftError for %s", err, id)
	}
	if err := b.AbortUpload(ctx, "part-fails.bin", id); err != nil {
		t.Fatalf("abort later: %v", err)
	}
	_, err = stack.RootClient().ListParts(ctx, &s3.ListPartsInput{
		Bucket: &cfg.Bucket, Key: aws.String(cfg.Prefix + "part-fails.bin"), UploadId: &id,
	})
	if !errors.As(err, &ae) || ae.ErrorCode() != "NoSuchUpload" {
		t.Errorf("list parts after AbortUpload: %v, want NoSuchUpload", err)
	}
}

// A source overwritten between Copy's HEAD and its copy request makes the
// copy fail with ErrPrecondition instead of copying the other version.
func TestCopyOfChangingSource(t *testing.T) {
	ctx := ctxFor(t)
	b := newGateway(t)
	if _, err := b.Put(ctx, "changing-src", strings.NewReader("one"), 3, bucket.Meta{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stack.S3.ClearFaults)
	// The copy request is held at the proxy while the source changes: the
	// source is rewritten once the proxy has the request (it counts it on
	// arrival), well inside the stall.
	copies := func() uint64 { return stack.S3.Counts()[wsstack.OpCopy] }
	before := copies()
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpCopy}, KeyContains: "changing-dst", Stall: 3 * time.Second, Times: 1})
	done := make(chan error, 1)
	go func() {
		_, err := b.Copy(ctx, "changing-src", "changing-dst", nil, "")
		done <- err
	}()
	for copies() == before {
		select {
		case err := <-done:
			t.Fatalf("copy returned before its request reached the proxy: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if _, err := b.Put(ctx, "changing-src", strings.NewReader("two"), 3, bucket.Meta{}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, bucket.ErrPrecondition) {
		t.Errorf("copy of a source changed under it: %v, want ErrPrecondition", err)
	}
	if _, err := b.Head(ctx, "changing-dst"); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("destination after the refused copy: %v", err)
	}
}
