package wsstack

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Op is the kind of an S3 request, as billed.
type Op string

const (
	OpGet               Op = "GET"
	OpHead              Op = "HEAD"
	OpList              Op = "LIST"
	OpPut               Op = "PUT"
	OpCopy              Op = "COPY"
	OpCreateMultipart   Op = "MPU_CREATE"
	OpUploadPart        Op = "MPU_PART"
	OpUploadPartCopy    Op = "MPU_PART_COPY"
	OpCompleteMultipart Op = "MPU_COMPLETE"
	OpAbortMultipart    Op = "MPU_ABORT"
	OpListParts         Op = "MPU_LIST_PARTS"
	OpDelete            Op = "DELETE"
	OpDeleteObjects     Op = "DELETE_MULTI"
	OpOther             Op = "OTHER"
)

// ClassifyS3 names the operation of a path-style S3 request.
func ClassifyS3(r *http.Request) Op {
	q := r.URL.Query()
	_, bucketOnly := splitBucketKey(r.URL.Path)
	has := func(k string) bool { _, ok := q[k]; return ok }
	copySrc := r.Header.Get("X-Amz-Copy-Source") != ""
	switch r.Method {
	case http.MethodGet:
		switch {
		case has("uploadId"):
			return OpListParts
		case bucketOnly:
			return OpList
		}
		return OpGet
	case http.MethodHead:
		return OpHead
	case http.MethodPut:
		switch {
		case has("partNumber") && copySrc:
			return OpUploadPartCopy
		case has("partNumber"):
			return OpUploadPart
		case copySrc:
			return OpCopy
		case bucketOnly:
			return OpOther
		}
		return OpPut
	case http.MethodPost:
		switch {
		case has("uploads"):
			return OpCreateMultipart
		case has("uploadId"):
			return OpCompleteMultipart
		case has("delete"):
			return OpDeleteObjects
		}
	case http.MethodDelete:
		switch {
		case has("uploadId"):
			return OpAbortMultipart
		case bucketOnly:
			return OpOther
		}
		return OpDelete
	}
	return OpOther
}

// splitBucketKey splits a path-style path; bucketOnly is true when no key
// follows the bucket.
func splitBucketKey(path string) (key string, bucketOnly bool) {
	path = strings.TrimPrefix(path, "/")
	_, key, found := strings.Cut(path, "/")
	return key, !found || key == ""
}

// S3Fault is an injected misbehaviour of the S3 side.
type S3Fault struct {
	// Ops limits the fault to these operations; empty means every one.
	Ops []Op
	// KeyContains limits the fault to keys containing this string (for
	// a LIST, its prefix).
	KeyContains string
	// Status, when non-zero, answers with this S3 error status instead of
	// forwarding: 503 as SlowDown, 500 as InternalError, others as the
	// gateway would spell them.
	Status int
	// Stall delays the request by this long before it is answered (or
	// until the client gives up).
	Stall time.Duration
	// Reset, after any Stall, drops the connection without an answer (a
	// TCP reset, as a crashed load balancer): the client cannot know
	// whether the request was carried out. It takes precedence over Status.
	Reset bool
	// Carried, with Reset, has the request carried out before the answer
	// is dropped: the write happened, and the client sees only the reset.
	Carried bool
	// Times is how many matching requests the fault applies to; 0 means
	// every matching request until ClearFaults.
	Times int
	// Cut, when positive, carries the request on but ends the answer's
	// body after Cut bytes by dropping the connection: a transfer that
	// breaks off half-way, as a reset through a load balancer does.
	Cut int64
	// Hold, when set, keeps a matching request waiting (after any Stall)
	// until it is closed or the client gives up, then carries it on: a
	// test can keep a request in flight for exactly as long as it needs.
	Hold <-chan struct{}
	// Matched, when set, is called with each request the fault applies
	// to, as it arrives: a test learns that a request is in flight (or
	// just watches for one, with a fault that does nothing else).
	Matched func(op Op, key string)
}

func (f *S3Fault) matches(op Op, key string) bool {
	if f.KeyContains != "" && !strings.Contains(key, f.KeyContains) {
		return false
	}
	if len(f.Ops) == 0 {
		return true
	}
	for _, o := range f.Ops {
		if o == op {
			return true
		}
	}
	return false
}

// S3Proxy is a thin reverse proxy in front of the gateway that counts
// requests by operation and injects faults. It forwards the Host header
// untouched, so SigV4 signatures made for the proxy's address still verify.
type S3Proxy struct {
	rp        *httputil.ReverseProxy
	transport *http.Transport // to the gateway

	mu     sync.Mutex
	faults []*S3Fault    // first match wins
	counts map[Op]uint64 // requests seen, by operation
	// retries counts the requests among counts that a client sent again
	// (the SDK's amz-sdk-request header says attempt > 1): a test of what
	// the mount decides to send can leave out what a busy machine made
	// the SDK repeat.
	retries map[Op]uint64
}

var _ http.Handler = (*S3Proxy)(nil)

func newS3Proxy(target *url.URL) *S3Proxy {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 512
	transport.MaxIdleConnsPerHost = 512
	transport.DisableCompression = true
	p := &S3Proxy{counts: make(map[Op]uint64), retries: make(map[Op]uint64), transport: transport}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport:  transport,
		BufferPool: newBufferPool(256 << 10),
		ErrorLog:   nil,
	}
	return p
}

// Inject adds a fault; faults are checked in the order they were added.
// It returns the function that removes this fault alone, for tests that
// run alongside others (ClearFaults removes theirs too).
func (p *S3Proxy) Inject(f S3Fault) (remove func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fp := &f
	p.faults = append(p.faults, fp)
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.faults = slices.DeleteFunc(p.faults, func(g *S3Fault) bool { return g == fp })
	}
}

// ClearFaults removes every injected fault.
func (p *S3Proxy) ClearFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// Counts returns how many requests of each operation the proxy has seen.
func (p *S3Proxy) Counts() map[Op]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := make(map[Op]uint64, len(p.counts))
	for k, v := range p.counts {
		c[k] = v
	}
	return c
}

// Retries returns how many of the requests Counts has seen were a
// client's second or later attempt at the same request.
func (p *S3Proxy) Retries() map[Op]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.retries)
}

// ResetCounts zeroes the counters (between benchmark workloads).
func (p *S3Proxy) ResetCounts() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts = make(map[Op]uint64)
	p.retries = make(map[Op]uint64)
}

// isRetry reports whether r is a repeated attempt, as the SDK marks it
// ("amz-sdk-request: attempt=2; max=5").
func isRetry(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("amz-sdk-request"), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "attempt="); ok {
			n, err := strconv.Atoi(v)
			return err == nil && n > 1
		}
	}
	return false
}

// ServeHTTP implements http.Handler.
func (p *S3Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := ClassifyS3(r)
	key, _ := splitBucketKey(r.URL.Path)
	if op == OpList {
		key = r.URL.Query().Get("prefix") // what a listing is of
	}
	f := p.record(op, key, isRetry(r))
	if f != nil && f.Matched != nil {
		f.Matched(op, key)
	}
	if f != nil && f.Stall > 0 {
		select {
		case <-time.After(f.Stall):
		case <-r.Context().Done():
			return
		}
	}
	if f != nil && f.Hold != nil {
		select {
		case <-f.Hold:
		case <-r.Context().Done():
			return
		}
	}
	if f != nil && f.Reset {
		if f.Carried {
			p.rp.ServeHTTP(httptest.NewRecorder(), r)
		}
		resetConnection(w)
		return
	}
	if f != nil && f.Status != 0 {
		// Read the body first, so the client sees the error rather than a
		// reset connection.
		io.Copy(io.Discard, r.Body)
		writeS3Error(w, f.Status)
		return
	}
	if f != nil && f.Cut > 0 {
		w = &cutWriter{ResponseWriter: w, left: f.Cut}
	}
	p.rp.ServeHTTP(w, r)
}

// cutWriter passes the first left bytes of a body on, then fails, which
// makes the reverse proxy abort the answer and drop the connection.
type cutWriter struct {
	http.ResponseWriter
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if int64(len(p)) <= c.left {
		c.left -= int64(len(p))
		return c.ResponseWriter.Write(p)
	}
	n, _ := c.ResponseWriter.Write(p[:c.left])
	c.left = 0
	http.NewResponseController(c.ResponseWriter).Flush()
	return n, errors.New("answer cut by an injected fault")
}

func (c *cutWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// record counts the request and returns the fault that applies to it, if any.
func (p *S3Proxy) record(op Op, key string, retry bool) *S3Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[op]++
	if retry {
		p.retries[op]++
	}
	for i, f := range p.faults {
		if !f.matches(op, key) {
			continue
		}
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				p.faults = append(p.faults[:i:i], p.faults[i+1:]...)
			}
		}
		return f
	}
	return nil
}

// resetConnection closes the request's connection with a TCP reset (linger
// 0), without an answer. The request is not forwarded.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection, without the reset
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

func writeS3Error(w http.ResponseWriter, status int) {
	code, msg := "InternalError", "We encountered an internal error. Please try again. (injected)"
	switch status {
	case http.StatusServiceUnavailable:
		code, msg = "SlowDown", "Please reduce your request rate. (injected)"
	case http.StatusForbidden:
		code, msg = "AccessDenied", "Access Denied (injected)"
	case http.StatusNotFound:
		code, msg = "NoSuchKey", "The specified key does not exist. (injected)"
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
}

// bufferPool shares copy buffers between proxied requests.
type bufferPool struct{ p sync.Pool }

func newBufferPool(size int) *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, size); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }
