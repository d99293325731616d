package bucket

import (
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"net/http"
	"sync/atomic"
	"time"

	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/aws/smithy-go/middleware"
)

// Observer is told about every request the Bucket sends, for metrics. Its
// methods are called concurrently and on the request path, so they must
// be cheap and must not block.
type Observer interface {
	// Request reports one attempt of an S3 operation ("GetObject",
	// "PutObject", ...): retries are attempts of their own. outcome is
	// "ok" or one of the Outcome* values.
	Request(op, outcome string, elapsed time.Duration)
	// Transferred reports body bytes sent to (PUT and part bodies) or
	// received from (GET bodies, listings) the storage.
	Transferred(sent, received int64)
}

// Outcomes of a request attempt, as reported to Observer.Request.
const (
	OutcomeOK           = "ok"
	OutcomeNotFound     = "not_found"
	OutcomeDenied       = "denied"
	OutcomePrecondition = "precondition_failed"
	OutcomeThrottled    = "throttled"
	OutcomeCredentials  = "credentials"
	OutcomeCanceled     = "canceled"
	OutcomeClientError  = "client_error" // any other 4xx
	OutcomeServerError  = "server_error" // any other 5xx
	OutcomeNetwork      = "network"      // no HTTP answer
)

// outcomeOf names the outcome of one attempt.
func outcomeOf(err error) string {
	if err == nil {
		return OutcomeOK
	}
	switch kind := classify(err); {
	case errors.Is(err, ErrCredentials) || kind == ErrCredentials:
		return OutcomeCredentials
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled
	case kind == iofs.ErrNotExist:
		return OutcomeNotFound
	case kind == iofs.ErrPermission:
		return OutcomeDenied
	case kind == ErrPrecondition:
		return OutcomePrecondition
	case kind == ErrThrottled:
		return OutcomeThrottled
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		if re.HTTPStatusCode() >= 500 {
			return OutcomeServerError
		}
		return OutcomeClientError
	}
	return OutcomeNetwork
}

// observeAttempts is a Finalize middleware placed after the retryer and
// the signer, so that it times each attempt on the wire (not the wait for
// credentials, which the credentials metrics count).
type observeAttempts struct{ o Observer }

func (observeAttempts) ID() string { return "mount-ws/observe" }

func (m observeAttempts) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	start := time.Now()
	out, md, err := next.HandleFinalize(ctx, in)
	m.o.Request(middleware.GetOperationName(ctx), outcomeOf(err), time.Since(start))
	return out, md, err
}

func (m observeAttempts) add(stack *middleware.Stack) error {
	return stack.Finalize.Add(m, middleware.After)
}

// countingTransport reports the body bytes that pass through it.
type countingTransport struct {
	next http.RoundTripper
	o    Observer
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		r := *req // a RoundTripper must not change the caller's request
		r.Body = &countingBody{ReadCloser: req.Body, report: func(n int64) { t.o.Transferred(n, 0) }}
		req = &r
	}
	resp, err := t.next.RoundTrip(req)
	if err == nil && resp.Body != nil {
		resp.Body = &countingBody{ReadCloser: resp.Body, report: func(n int64) { t.o.Transferred(0, n) }}
	}
	return resp, err
}

// countingBody reports what is read through it, in batches of at least
// 256 KiB and at Close, so that small reads do not each cost a report.
type countingBody struct {
	io.ReadCloser
	report  func(int64)
	pending atomic.Int64
}

const reportEvery = 256 << 10

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && b.pending.Add(int64(n)) >= reportEvery {
		b.report(b.pending.Swap(0))
	}
	if err != nil {
		b.flush()
	}
	return n, err
}

func (b *countingBody) Close() error {
	b.flush()
	return b.ReadCloser.Close()
}

func (b *countingBody) flush() {
	if n := b.pending.Swap(0); n > 0 {
		b.report(n)
	}
}
