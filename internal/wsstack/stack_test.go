package wsstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// The gateway runs once per process, so every test in this package shares
// one stack. Tests use workspaces of their own to stay independent.
var testStack *Stack

const (
	tokenA    = "token-alpha"
	tokenB    = "token-beta"
	tokenBoth = "token-both"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wsstack-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testStack, err = Start(context.Background(), Config{
		DataDir: dir,
		Workspaces: []Workspace{
			{Org: "acme", WS: "alpha", Tokens: []string{tokenA, tokenBoth}},
			{Org: "acme", WS: "beta", Tokens: []string{tokenB, tokenBoth}},
			{Org: "other", WS: "own-bucket", Bucket: "other-bucket", Tokens: []string{tokenB}},
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start stack:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := testStack.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close stack:", err)
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// getCreds calls the emulator over HTTP, as a client would.
func getCreds(t *testing.T, method, path, token string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, testStack.APIURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func credsPath(org, ws string) string {
	return "/api/v1/org/" + org + "/ws/" + ws + "/storage/credentials"
}

// mint fetches credentials for org/ws and decodes them strictly.
func mint(t *testing.T, org, ws, token string) CredentialsResponse {
	t.Helper()
	status, _, body := getCreds(t, http.MethodGet, credsPath(org, ws), token)
	if status != http.StatusOK {
		t.Fatalf("credentials for %s/%s: status %d: %s", org, ws, status, body)
	}
	var c CredentialsResponse
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("decode credentials: %v: %s", err, body)
	}
	return c
}

// clientFor is an SDK S3 client signing with c, through the stack's endpoint.
func clientFor(c CredentialsResponse) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(c.Endpoint),
		Region:       c.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
		Retryer:      aws.NopRetryer{},
	})
}

func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func TestCredentialsBodyHasEveryField(t *testing.T) {
	before := time.Now()
	_, _, body := getCreds(t, http.MethodGet, credsPath("acme", "alpha"), tokenA)
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	want := []string{"access_key_id", "secret_access_key", "session_token", "expiration", "bucket", "prefix", "endpoint", "region"}
	if len(raw) != len(want) {
		t.Errorf("body has %d fields, want %d: %s", len(raw), len(want), body)
	}
	for _, k := range want {
		if s, ok := raw[k].(string); !ok || s == "" {
			t.Errorf("field %q missing or not a non-empty string: %v", k, raw[k])
		}
	}
	c := mint(t, "acme", "alpha", tokenA)
	if !strings.HasPrefix(c.AccessKeyID, "ASIA") {
		t.Errorf("access key id %q does not look temporary", c.AccessKeyID)
	}
	exp, err := time.Parse(time.RFC3339, c.Expiration)
	if err != nil {
		t.Fatalf("expiration %q is not RFC 3339: %v", c.Expiration, err)
	}
	if lifetime := exp.Sub(before); lifetime < 59*time.Minute || lifetime > 61*time.Minute {
		t.Errorf("expiration %v is %v away, want the default TTL of 1h", exp, lifetime)
	}
	if c.Bucket != DefaultBucket || c.Prefix != "acme/alpha/" || c.Endpoint != testStack.S3URL() || c.Region != "us-east-1" {
		t.Errorf("unexpected location: %+v", c)
	}
	if c2 := mint(t, "acme", "alpha", tokenA); c2.AccessKeyID == c.AccessKeyID || c2.SessionToken == c.SessionToken {
		t.Error("two calls returned the same credentials; each call must mint fresh ones")
	}
}

func TestAPIErrorsUseTheEnvelope(t *testing.T) {
	tests := []struct {
		name, method, path, token string
		status                    int
		typ, detailHas            string
		validationLocs            []string
	}{
		{"no token", "GET", credsPath("acme", "alpha"), "", 401, "authentication_error", "missing bearer token", nil},
		{"unknown token", "GET", credsPath("acme", "alpha"), "nope", 401, "authentication_error", "invalid", nil},
		{"not granted", "GET", credsPath("acme", "beta"), tokenA, 403, "permission_denied", "acme/beta", nil},
		{"unknown workspace", "GET", credsPath("acme", "gamma"), tokenA, 404, "not_found", `"gamma"`, nil},
		{"unknown org", "GET", credsPath("nobody", "alpha"), tokenA, 404, "not_found", `"nobody"`, nil},
		{"malformed org", "GET", credsPath("Acme!", "alpha"), tokenA, 422, "validation_error", "Validation", []string{"path.org"}},
		{"malformed both", "GET", credsPath("-a", "B_"), tokenA, 422, "validation_error", "Validation", []string{"path.org", "path.ws"}},
		{"wrong method", "POST", credsPath("acme", "alpha"), tokenA, 405, "method_not_allowed", "POST", nil},
		{"unknown path", "GET", "/api/v1/whatever", tokenA, 404, "not_found", "No such endpoint", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := getCreds(t, tt.method, tt.path, tt.token)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var env ErrorEnvelope
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&env); err != nil {
				t.Fatalf("not an envelope: %v: %s", err, body)
			}
			if env.Code != tt.status || env.Type != tt.typ || !strings.Contains(env.Detail, tt.detailHas) {
				t.Errorf("envelope %+v, want code %d type %q detail containing %q", env, tt.status, tt.typ, tt.detailHas)
			}
			var locs []string
			for _, v := range env.Errors {
				locs = append(locs, strings.Join(v.Loc, "."))
				if v.Msg == "" || v.Type == "" {
					t.Errorf("validation error without msg or type: %+v", v)
				}
			}
			if strings.Join(locs, ",") != strings.Join(tt.validationLocs, ",") {
				t.Errorf("validation locs %v, want %v", locs, tt.validationLocs)
			}
		})
	}
}

func TestTokenGrantedSeveralWorkspaces(t *testing.T) {
	for _, ws := range []string{"alpha", "beta"} {
		c := mint(t, "acme", ws, tokenBoth)
		if c.Prefix != "acme/"+ws+"/" {
			t.Errorf("prefix %q for acme/%s", c.Prefix, ws)
		}
	}
}

func TestS3ScopedToWorkspacePrefix(t *testing.T) {
	ctx := context.Background()
	c := mint(t, "acme", "alpha", tokenA)
	cl := clientFor(c)
	key := c.Prefix + "dir/hello.txt"

	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: &c.Bucket, Key: &key, Body: strings.NewReader("hello")}); err != nil {
		t.Fatalf("put under own prefix: %v", err)
	}
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: &c.Bucket, Key: &key})
	if err != nil {
		t.Fatalf("get under own prefix: %v", err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(got) != "hello" {
		t.Errorf("got %q", got)
	}
	if _, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &c.Bucket, Key: &key}); err != nil {
		t.Errorf("head under own prefix: %v", err)
	}
	list, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &c.Bucket, Prefix: aws.String(c.Prefix), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatalf("list own prefix: %v", err)
	}
	if len(list.CommonPrefixes) != 1 || aws.ToString(list.CommonPrefixes[0].Prefix) != c.Prefix+"dir/" {
		t.Errorf("list: common prefixes %v", list.CommonPrefixes)
	}
	copyKey := c.Prefix + "dir/copy.txt"
	if _, err := cl.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &c.Bucket, Key: &copyKey, CopySource: aws.String(c.Bucket + "/" + key)}); err != nil {
		t.Errorf("copy within own prefix: %v", err)
	}

	// Outside the prefix: other workspace, the bucket root, a sibling
	// whose name merely starts like ours, and a bucket-level call.
	beta := "acme/beta/x.txt"
	sibling := "acme/alpha-evil/x.txt"
	denied := map[string]error{}
	_, denied["put other workspace"] = cl.PutObject(ctx, &s3.PutObjectInput{Bucket: &c.Bucket, Key: &beta, Body: strings.NewReader("x")})
	_, denied["put bucket root"] = cl.PutObject(ctx, &s3.PutObjectInput{Bucket: &c.Bucket, Key: aws.String("root.txt"), Body: strings.NewReader("x")})
	_, denied["put sibling prefix"] = cl.PutObject(ctx, &s3.PutObjectInput{Bucket: &c.Bucket, Key: &sibling, Body: strings.NewReader("x")})
	_, denied["get other workspace"] = cl.GetObject(ctx, &s3.GetObjectInput{Bucket: &c.Bucket, Key: &beta})
	_, denied["list whole bucket"] = cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &c.Bucket})
	_, denied["list other workspace"] = cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &c.Bucket, Prefix: aws.String("acme/beta/")})
	_, denied["copy out of prefix"] = cl.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &c.Bucket, Key: &beta, CopySource: aws.String(c.Bucket + "/" + key)})
	_, denied["delete bucket policy"] = cl.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: &c.Bucket})
	_, denied["other bucket"] = cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("other-bucket"), Prefix: aws.String("acme/alpha/")})
	for what, err := range denied {
		if code := errorCode(err); code != "AccessDenied" {
			t.Errorf("%s: got %v, want AccessDenied", what, err)
		}
	}

	if _, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &c.Bucket, Key: &key}); err != nil {
		t.Errorf("delete under own prefix: %v", err)
	}
	if _, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &c.Bucket, Key: &key}); err == nil {
		t.Error("object still there after delete")
	}
}

func TestMultipartUploadUnderPrefix(t *testing.T) {
	ctx := context.Background()
	c := mint(t, "acme", "alpha", tokenA)
	cl := clientFor(c)
	key := c.Prefix + "big.bin"
	mpu, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &c.Bucket, Key: &key})
	if err != nil {
		t.Fatalf("create multipart: %v", err)
	}
	part := bytes.Repeat([]byte("p"), 5<<20)
	up, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: &c.Bucket, Key: &key, UploadId: mpu.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(part)})
	if err != nil {
		t.Fatalf("upload part: %v", err)
	}
	if _, err := cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &c.Bucket, Key: &key, UploadId: mpu.UploadId,
		MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{ETag: up.ETag, PartNumber: aws.Int32(1)}}},
	}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	head, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &c.Bucket, Key: &key})
	if err != nil || aws.ToInt64(head.ContentLength) != int64(len(part)) {
		t.Fatalf("head after complete: %v %v", err, head)
	}
	outside := "acme/beta/big.bin"
	if _, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &c.Bucket, Key: &outside}); errorCode(err) != "AccessDenied" {
		t.Errorf("multipart outside prefix: %v, want AccessDenied", err)
	}
}

func TestExpiredCredentialsRefused(t *testing.T) {
	ctx := context.Background()
	testStack.API.SetTTL(2 * time.Second)
	c := mint(t, "acme", "beta", tokenB)
	testStack.API.SetTTL(time.Hour)
	cl := clientFor(c)
	key := c.Prefix + "expiry.txt"
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: &c.Bucket, Key: &key, Body: strings.NewReader("x")}); err != nil {
		t.Fatalf("put while valid: %v", err)
	}
	exp, _ := time.Parse(time.RFC3339, c.Expiration)
	time.Sleep(time.Until(exp) + 100*time.Millisecond)
	_, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: &c.Bucket, Key: &key})
	if code := errorCode(err); code != "ExpiredToken" {
		t.Fatalf("get after expiry: %v, want ExpiredToken", err)
	}
}

func TestForgedSessionTokenRefused(t *testing.T) {
	ctx := context.Background()
	a := mint(t, "acme", "alpha", tokenA)
	b := mint(t, "acme", "beta", tokenB)
	tests := []struct {
		name     string
		mutate   func(c CredentialsResponse) CredentialsResponse
		wantCode string
	}{
		{"forged token", func(c CredentialsResponse) CredentialsResponse { c.SessionToken = "forged"; return c }, "InvalidToken"},
		{"token of another session", func(c CredentialsResponse) CredentialsResponse { c.SessionToken = b.SessionToken; return c }, "InvalidToken"},
		{"no token", func(c CredentialsResponse) CredentialsResponse { c.SessionToken = ""; return c }, "InvalidToken"},
		{"wrong secret", func(c CredentialsResponse) CredentialsResponse { c.SecretAccessKey = b.SecretAccessKey; return c }, "SignatureDoesNotMatch"},
		{"unknown key", func(c CredentialsResponse) CredentialsResponse { c.AccessKeyID = "ASIAUNKNOWNUNKNOWN00"; return c }, "InvalidAccessKeyId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.mutate(a)
			_, err := clientFor(c).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &c.Bucket, Prefix: &c.Prefix})
			if code := errorCode(err); code != tt.wantCode {
				t.Errorf("got %v, want %s", err, tt.wantCode)
			}
		})
	}
}

func TestRevokedCredentialsRefused(t *testing.T) {
	ctx := context.Background()
	c := mint(t, "acme", "alpha", tokenA)
	cl := clientFor(c)
	list := &s3.ListObjectsV2Input{Bucket: &c.Bucket, Prefix: &c.Prefix}
	if _, err := cl.ListObjectsV2(ctx, list); err != nil {
		t.Fatalf("list before revoke: %v", err)
	}
	if !testStack.Revoke(c.AccessKeyID) {
		t.Fatal("revoke: key unknown")
	}
	if _, err := cl.ListObjectsV2(ctx, list); errorCode(err) != "InvalidAccessKeyId" {
		t.Fatalf("list after revoke: %v, want InvalidAccessKeyId", err)
	}

	c1, c2 := mint(t, "acme", "alpha", tokenA), mint(t, "acme", "alpha", tokenA)
	if n := testStack.RevokeWorkspace("acme", "alpha"); n < 2 {
		t.Errorf("RevokeWorkspace revoked %d, want at least 2", n)
	}
	for _, c := range []CredentialsResponse{c1, c2} {
		if _, err := clientFor(c).ListObjectsV2(ctx, list); errorCode(err) != "InvalidAccessKeyId" {
			t.Errorf("list after workspace revoke: %v", err)
		}
	}
}
