package creds

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"syscall"

	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Middleware IDs added by AddReactiveRefresh.
const (
	reactiveRefreshID = "mount-ws/ReactiveRefresh"
	signedKeyID       = "mount-ws/SignedKey"
)

// AddReactiveRefresh installs reactive refresh on an AWS SDK operation
// stack. Use it as an API option of the S3 client:
//
//	s3.New(s3.Options{
//		Credentials: provider,
//		APIOptions:  []func(*middleware.Stack) error{provider.AddReactiveRefresh},
//		...
//	})
//
// When the storage rejects the credentials a request was signed with, the
// middleware invalidates exactly those credentials (see Invalidate), and
// sends the request once more, signed with the fresh credentials that
// Retrieve then waits for. A rejection is:
//
//   - ExpiredToken, InvalidAccessKeyId, InvalidToken or TokenRefreshRequired;
//   - AccessDenied, or a 403 without a body (the answer to HEAD), when the
//     signing credentials are in their refresh window or past it, and
//     otherwise at most once per refresh interval: a revoked key looks the
//     same, and genuine denials then cost at most one extra refresh per
//     interval;
//   - a connection reset, a broken pipe (how a large upload signed with
//     expired credentials often ends) or a 400 without a body, only in or
//     past the refresh window.
//
// A request signed with credentials that were already replaced is sent
// again whatever the rejection.
//
// A retry rejected in turn under other credentials is sent again too, up
// to maxReactiveRetries times: after a revocation, the credentials that
// replaced the rejected ones may have been issued just before it, and be
// revoked as well. A retry signed with the very key just rejected is not
// sent again. All this happens inside each attempt of the SDK's own retry
// loop; a request whose body cannot be
// rewound is not retried (the credentials are still invalidated, so the
// next request succeeds). The signing access key is read from the signed
// request itself, so the middleware works whatever wraps the Provider.
// Installing it twice on a stack is harmless.
func (p *Provider) AddReactiveRefresh(stack *middleware.Stack) error {
	if _, ok := stack.Finalize.Get(reactiveRefreshID); ok {
		return nil
	}
	// The recorder goes last, after Signing; the retrying middleware just
	// inside the SDK's retry loop, before identity resolution and signing.
	if err := stack.Finalize.Add(signedKeyRecorder{}, middleware.After); err != nil {
		return err
	}
	rr := &reactiveRefresh{p: p}
	if _, ok := stack.Finalize.Get("Retry"); ok {
		return stack.Finalize.Insert(rr, "Retry", middleware.After)
	}
	return stack.Finalize.Add(rr, middleware.Before)
}

// signedKey carries the access key that signed an attempt from the
// recorder back up to reactiveRefresh.
type signedKey struct{ id string }

type signedKeyCtx struct{}

// signedKeyRecorder notes the access key ID of the signed request.
type signedKeyRecorder struct{}

func (signedKeyRecorder) ID() string { return signedKeyID }

func (signedKeyRecorder) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	if sk, ok := ctx.Value(signedKeyCtx{}).(*signedKey); ok {
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			sk.id = signingKeyID(req.Request)
		}
	}
	return next.HandleFinalize(ctx, in)
}

// signingKeyID extracts the access key ID from a SigV4-signed request's
// Authorization header ("... Credential=AKID/date/region/service/aws4_request, ...")
// or presigned query. It returns "" for an unsigned request.
func signingKeyID(r *http.Request) string {
	cred := ""
	if _, rest, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		cred = rest
	} else if r.URL != nil {
		cred = r.URL.Query().Get("X-Amz-Credential")
	}
	id, _, ok := strings.Cut(cred, "/")
	if !ok {
		return ""
	}
	return id
}

// maxReactiveRetries bounds the retries of one attempt after credential
// rejections (see AddReactiveRefresh).
const maxReactiveRetries = 3

// reactiveRefresh retries an attempt after a credential rejection.
type reactiveRefresh struct{ p *Provider }

func (*reactiveRefresh) ID() string { return reactiveRefreshID }

func (r *reactiveRefresh) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	req, ok := in.Request.(*smithyhttp.Request)
	if !ok {
		return next.HandleFinalize(ctx, in)
	}
	rejectedKey := ""
	for retries := 0; ; retries++ {
		// Keep req pristine: each send gets its own clone, as in the
		// SDK's retry loop.
		sk := &signedKey{}
		send := in
		send.Request = req.Clone()
		out, md, err := next.HandleFinalize(context.WithValue(ctx, signedKeyCtx{}, sk), send)
		if err == nil || sk.id == "" || sk.id == rejectedKey || retries == maxReactiveRetries ||
			ctx.Err() != nil || !r.p.rejected(err, sk.id) {
			return out, md, err
		}
		if rerr := req.RewindStream(); rerr != nil {
			return out, md, err
		}
		r.p.reactiveRetries.Add(1)
		rejectedKey = sk.id
	}
}

// rejected reports whether err means the storage rejected the credentials
// with access key id, so that the request should be sent again; if so, and
// those credentials are still held, it invalidates them. See
// AddReactiveRefresh for the rules.
func (p *Provider) rejected(err error, id string) bool {
	r := classifyRejection(err)
	if r == notRejected {
		return false
	}
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur.creds.AccessKeyID != id {
		// Already replaced: the retry is signed with the fresh credentials.
		return true
	}
	stale := p.cur.invalid || !now.Before(p.cur.staleAt)
	switch {
	case r == rejectedMaybe && !stale:
		// Away from expiry, AccessDenied usually means what it says; but a
		// revoked key looks the same on a HEAD. Check by refreshing, at most
		// once per refresh interval, so genuine denials cannot drive the
		// API harder than twice its normal rate.
		if !p.lastProbe.IsZero() && now.Sub(p.lastProbe) < p.cur.staleAt.Sub(p.cur.fetched) {
			return false
		}
		p.lastProbe = now
	case r == rejectedIfStale && !stale:
		return false
	}
	p.invalidateLocked(id)
	return true
}

// rejection is what an S3 error says about the credentials that signed the request.
type rejection int

const (
	notRejected     rejection = iota
	rejectedIfStale           // connection reset, broken pipe, bare 400: only near expiry
	rejectedMaybe             // AccessDenied, bare 403: near expiry, or once per credentials
	rejectedCertain           // ExpiredToken, InvalidAccessKeyId, InvalidToken, TokenRefreshRequired
)

// classifyRejection sorts an S3 error by what it says about the credentials.
// Answers to HEAD carry no body, so their code is only the status text.
func classifyRejection(err error) rejection {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ExpiredToken", "InvalidAccessKeyId", "InvalidToken", "TokenRefreshRequired":
			return rejectedCertain
		case "AccessDenied", "Forbidden":
			return rejectedMaybe
		case "BadRequest":
			return rejectedIfStale
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
		return rejectedMaybe
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return rejectedIfStale
	}
	return notRejected
}
