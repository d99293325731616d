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
//   - AccessDenied (or a bare 403), a connection reset or a broken pipe, but
//     only if the signing credentials are in their refresh window, past it,
//     or already replaced: away from expiry these mean something else, and
//     refreshing would not help.
//
// Each request is retried at most once by this middleware, inside each
// attempt of the SDK's own retry loop; a request whose body cannot be
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

// reactiveRefresh retries an attempt once after a credential rejection.
type reactiveRefresh struct{ p *Provider }

func (*reactiveRefresh) ID() string { return reactiveRefreshID }

func (r *reactiveRefresh) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
	middleware.FinalizeOutput, middleware.Metadata, error,
) {
	req, ok := in.Request.(*smithyhttp.Request)
	if !ok {
		return next.HandleFinalize(ctx, in)
	}
	// Keep req pristine: each send gets its own clone, as in the SDK's retry loop.
	sk := &signedKey{}
	first := in
	first.Request = req.Clone()
	out, md, err := next.HandleFinalize(context.WithValue(ctx, signedKeyCtx{}, sk), first)
	if err == nil || sk.id == "" || ctx.Err() != nil || !r.p.rejected(err, sk.id) {
		return out, md, err
	}
	if rerr := req.RewindStream(); rerr != nil {
		return out, md, err
	}
	r.p.reactiveRetries.Add(1)
	second := in
	second.Request = req.Clone()
	return next.HandleFinalize(ctx, second)
}

// rejected reports whether err means the storage rejected the credentials
// with access key id, and if so invalidates them. See AddReactiveRefresh.
func (p *Provider) rejected(err error, id string) bool {
	switch classifyRejection(err) {
	case rejectionCertain:
	case rejectionAmbiguous:
		if !p.nearExpiry(id) {
			return false
		}
	default:
		return false
	}
	p.Invalidate(id)
	return true
}

// nearExpiry reports whether the credentials with access key id are in or
// past their refresh window, invalidated, or no longer the held ones.
func (p *Provider) nearExpiry(id string) bool {
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur.creds.AccessKeyID != id {
		return true
	}
	return p.cur.invalid || !now.Before(p.cur.staleAt)
}

type rejection int

const (
	rejectionNone rejection = iota
	rejectionAmbiguous
	rejectionCertain
)

// classifyRejection sorts an S3 error by what it says about the credentials.
func classifyRejection(err error) rejection {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ExpiredToken", "InvalidAccessKeyId", "InvalidToken", "TokenRefreshRequired":
			return rejectionCertain
		case "AccessDenied", "Forbidden":
			return rejectionAmbiguous
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
		return rejectionAmbiguous
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return rejectionAmbiguous
	}
	return rejectionNone
}
