package buckettest

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"mount-ws/bucket"
)

// Where NewFake keeps its objects.
const (
	FakeBucket = "fake-bucket"
	FakePrefix = "org/ws/"
)

// NewFake starts an in-memory S3 server (gofakes3) for the test and returns
// a Bucket on it, scoped to FakePrefix, and rawPut, which stores data under
// FakePrefix+key without any validation of key, straight into the server's
// storage: for keys a Bucket refuses and the gateway's posix backend cannot
// hold ("a//b", both "x" and "x/y", 300-byte names). The server is closed
// by t.Cleanup.
//
// The fake is made to behave like S3 where gofakes3 does not: listings
// (markers as common prefixes, pagination), If-Match on GET and HEAD,
// x-amz-copy-source-if-match, UploadPartCopy, the REPLACE metadata
// directive of CopyObject, conditional CompleteMultipartUpload and its
// ETag are handled in front of it.
func NewFake(t testing.TB) (*bucket.Bucket, func(key string, data []byte)) {
	t.Helper()
	cfg, rawPut := NewFakeConfig(t)
	b, err := bucket.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b, rawPut
}

// NewFakeConfig is NewFake returning the Config instead, to adjust before
// bucket.New. Each call starts its own server.
func NewFakeConfig(t testing.TB) (bucket.Config, func(key string, data []byte)) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(FakeBucket); err != nil {
		t.Fatal(err)
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()), gofakes3.WithIntegrityCheck(true))
	srv := httptest.NewServer(&fakeShim{next: faker.Server(), backend: backend})
	t.Cleanup(srv.Close)
	rawPut := func(key string, data []byte) {
		t.Helper()
		meta := map[string]string{"Last-Modified": time.Now().UTC().Format(http.TimeFormat)}
		if _, err := backend.PutObject(FakeBucket, FakePrefix+key, meta, bytes.NewReader(data), int64(len(data)), nil); err != nil {
			t.Fatalf("raw put %q: %v", key, err)
		}
	}
	return bucket.Config{
		Bucket:      FakeBucket,
		Prefix:      FakePrefix,
		Endpoint:    srv.URL,
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDFAKE", "fake-secret", ""),
	}, rawPut
}

// fakeShim adds to gofakes3 the S3 behaviour mount-ws relies on and
// gofakes3 lacks, by making plain requests to it.
type fakeShim struct {
	next    http.Handler
	backend gofakes3.Backend
}

func (s *fakeShim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	src := r.Header.Get("X-Amz-Copy-Source")
	switch {
	case r.Method == http.MethodGet && q.Get("list-type") == "2" && strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0:
		s.listV2(w, r)
		return
	case r.Method == http.MethodPost && q.Get("uploadId") != "":
		s.complete(w, r)
		return
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && r.Header.Get("If-Match") != "":
		if etag, ok := s.etag(r.URL.Path); ok && etag != r.Header.Get("If-Match") {
			fakeError(w, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		}
		r.Header.Del("If-Match")
	case r.Method == http.MethodPut && src != "":
		srcPath := "/" + strings.TrimPrefix(src, "/")
		if unesc, err := url.PathUnescape(srcPath); err == nil {
			srcPath = unesc
		}
		etag, ok := s.etag(srcPath)
		if !ok {
			fakeError(w, http.StatusNotFound, "NoSuchKey")
			return
		}
		if m := r.Header.Get("X-Amz-Copy-Source-If-Match"); m != "" && m != etag {
			fakeError(w, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		}
		if q.Get("uploadId") != "" {
			s.uploadPartCopy(w, r, srcPath)
			return
		}
		if strings.EqualFold(r.Header.Get("X-Amz-Metadata-Directive"), "REPLACE") {
			s.copyReplace(w, r, srcPath)
			return
		}
	}
	s.next.ServeHTTP(w, r)
}

// do makes a request to gofakes3 and returns its recorded answer.
func (s *fakeShim) do(method, path, rawQuery string, hdr http.Header, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "http://fake/", bytes.NewReader(body))
	req.URL.Path = path
	req.URL.RawPath = ""
	req.URL.RawQuery = rawQuery
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Length", strconv.Itoa(len(body)))
	req.ContentLength = int64(len(body))
	rec := httptest.NewRecorder()
	s.next.ServeHTTP(rec, req)
	return rec
}

func (s *fakeShim) etag(path string) (string, bool) {
	rec := s.do(http.MethodHead, path, "", nil, nil)
	if rec.Code != http.StatusOK {
		return "", false
	}
	return rec.Header().Get("ETag"), true
}

// uploadPartCopy reads the source range and uploads it as the part.
func (s *fakeShim) uploadPartCopy(w http.ResponseWriter, r *http.Request, srcPath string) {
	hdr := http.Header{}
	if rng := r.Header.Get("X-Amz-Copy-Source-Range"); rng != "" {
		hdr.Set("Range", rng)
	}
	got := s.do(http.MethodGet, srcPath, "", hdr, nil)
	if got.Code != http.StatusOK && got.Code != http.StatusPartialContent {
		fakeError(w, got.Code, "InvalidRequest")
		return
	}
	part := s.do(http.MethodPut, r.URL.Path, r.URL.RawQuery, nil, got.Body.Bytes())
	if part.Code != http.StatusOK {
		copyRecorded(w, part)
		return
	}
	writeXML(w, struct {
		XMLName      xml.Name `xml:"CopyPartResult"`
		ETag         string
		LastModified string
	}{ETag: part.Header().Get("ETag"), LastModified: time.Now().UTC().Format(time.RFC3339)})
}

// copyReplace copies with the request's metadata only.
func (s *fakeShim) copyReplace(w http.ResponseWriter, r *http.Request, srcPath string) {
	got := s.do(http.MethodGet, srcPath, "", nil, nil)
	if got.Code != http.StatusOK {
		copyRecorded(w, got)
		return
	}
	hdr := http.Header{}
	for k, v := range r.Header {
		if strings.HasPrefix(k, "X-Amz-Meta-") || k == "Content-Type" {
			hdr[k] = v
		}
	}
	put := s.do(http.MethodPut, r.URL.Path, "", hdr, got.Body.Bytes())
	if put.Code != http.StatusOK {
		copyRecorded(w, put)
		return
	}
	writeXML(w, struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		ETag         string
		LastModified string
	}{ETag: put.Header().Get("ETag"), LastModified: time.Now().UTC().Format(time.RFC3339)})
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	io.Copy(w, rec.Body)
}

func writeXML(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/xml")
	out, _ := xml.Marshal(v)
	w.Write(append([]byte(xml.Header), out...))
}

func fakeError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if code != "" {
		fmt.Fprintf(w, "%s<Error><Code>%s</Code><Message>%s</Message></Error>", xml.Header, code, code)
	}
}

// listV2 answers ListObjectsV2 the way S3 does. gofakes3 returns a marker
// "dir/" as an object of its parent's listing rather than a common prefix,
// and can repeat a common prefix across pages.
func (s *fakeShim) listV2(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := strings.Trim(r.URL.Path, "/")
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	maxKeys := 1000
	if v, err := strconv.Atoi(q.Get("max-keys")); err == nil && v >= 0 && v < maxKeys {
		maxKeys = v
	}
	after := q.Get("start-after")
	if tok := q.Get("continuation-token"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			fakeError(w, http.StatusBadRequest, "InvalidArgument")
			return
		}
		after = string(b)
	}
	all, err := s.backend.ListBucket(name, &gofakes3.Prefix{HasPrefix: prefix != "", Prefix: prefix}, gofakes3.ListBucketPage{})
	if err != nil {
		fakeError(w, http.StatusNotFound, "NoSuchBucket")
		return
	}
	slices.SortFunc(all.Contents, func(a, b *gofakes3.Content) int { return strings.Compare(a.Key, b.Key) })
	res := gofakes3.ListBucketResultV2{
		ListBucketResultBase: gofakes3.ListBucketResultBase{
			Xmlns: "http://s3.amazonaws.com/doc/2006-03-01/", Name: name,
			Prefix: prefix, Delimiter: delim, MaxKeys: int64(maxKeys),
		},
		ContinuationToken: q.Get("continuation-token"),
	}
	last := ""
	for _, c := range all.Contents {
		entry, rolled := c.Key, false
		if delim != "" {
			if i := strings.Index(c.Key[len(prefix):], delim); i >= 0 {
				entry, rolled = c.Key[:len(prefix)+i+len(delim)], true
			}
		}
		if entry <= after || entry == last {
			continue // before the page, or a prefix already counted
		}
		if int(res.KeyCount) == maxKeys {
			res.IsTruncated = true
			res.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(last))
			break
		}
		if !rolled {
			res.Contents = append(res.Contents, c)
		} else {
			res.CommonPrefixes = append(res.CommonPrefixes, gofakes3.CommonPrefix{Prefix: entry})
		}
		res.KeyCount++
		last = entry
	}
	writeXML(w, res)
}

// complete completes a multipart upload and answers with the ETag the
// object then has: gofakes3 answers with an S3-style multipart ETag but
// serves the MD5 of the whole object afterwards.
func (s *fakeShim) complete(w http.ResponseWriter, r *http.Request) {
	if ifMatch, ifNone := r.Header.Get("If-Match"), r.Header.Get("If-None-Match"); ifMatch != "" || ifNone != "" {
		etag, exists := s.etag(r.URL.Path)
		switch {
		case ifNone == "*" && exists, ifMatch != "" && exists && etag != ifMatch:
			fakeError(w, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		case ifMatch != "" && !exists:
			fakeError(w, http.StatusNotFound, "NoSuchKey")
			return
		}
	}
	rec := httptest.NewRecorder()
	s.next.ServeHTTP(rec, r)
	var res gofakes3.CompleteMultipartUploadResult
	if rec.Code != http.StatusOK || xml.Unmarshal(rec.Body.Bytes(), &res) != nil {
		copyRecorded(w, rec)
		return
	}
	if etag, ok := s.etag(r.URL.Path); ok {
		res.ETag = etag
	}
	writeXML(w, struct {
		XMLName xml.Name `xml:"CompleteMultipartUploadResult"`
		gofakes3.CompleteMultipartUploadResult
	}{CompleteMultipartUploadResult: res})
}
