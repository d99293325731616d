package bucket

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Sentinel errors. Every error a Bucket method returns wraps the SDK's
// error (when there is one) and, when it can be classified, one of these
// or io/fs's ErrNotExist (NoSuchKey, 404) or ErrPermission (AccessDenied,
// 403). Test with errors.Is; never match error text.
var (
	// ErrPrecondition: a conditional request failed (412, or 409
	// ConditionalRequestConflict), such as a Get whose If-Match no longer
	// matches the object's ETag.
	ErrPrecondition = errors.New("precondition failed")
	// ErrThrottled: the server asked to slow down (503 SlowDown, 429) and
	// kept doing so through all the SDK's retries.
	ErrThrottled = errors.New("throttled by the storage")
	// ErrCredentials: no valid credentials: the credentials provider
	// failed, or the storage refused the credentials themselves (expired,
	// revoked, unknown key, bad signature). Not used for AccessDenied,
	// which is ErrPermission.
	ErrCredentials = errors.New("no valid credentials")
	// ErrInvalidKey: a key was refused before any request because it could
	// address something outside the prefix, or is not a key at all. It
	// matches io/fs's ErrInvalid too.
	ErrInvalidKey error = invalidKeyError{}
	// ErrKeyTooLong: a key longer than S3 allows (1,024 bytes with the
	// prefix), refused before any request. It matches ErrInvalidKey too.
	ErrKeyTooLong error = keyTooLongError{}
)

type keyTooLongError struct{}

func (keyTooLongError) Error() string { return "key too long" }

func (keyTooLongError) Is(target error) bool {
	return target == ErrInvalidKey || target == iofs.ErrInvalid
}

type invalidKeyError struct{}

func (invalidKeyError) Error() string { return "invalid key" }

func (invalidKeyError) Is(target error) bool { return target == iofs.ErrInvalid }

// kindError attaches a classification to an SDK error without changing
// its message.
type kindError struct {
	kind error // one of the sentinels above, iofs.ErrNotExist or iofs.ErrPermission
	err  error // the SDK's error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// credentialsError marks a failure of the credentials provider; see
// credentialsProvider.
type credentialsError struct{ err error }

func (e *credentialsError) Error() string   { return "retrieve credentials: " + e.err.Error() }
func (e *credentialsError) Unwrap() []error { return []error{ErrCredentials, e.err} }

// RetryableError tells the SDK's retryer never to retry: the provider
// has already waited as long as it should (creds' ExpiredWaitBound), and
// the connection error it may wrap (the workspace API's) would otherwise
// make each of the retryer's attempts wait that long again.
func (e *credentialsError) RetryableError() bool { return false }

// credentialsProvider wraps the configured provider so that its failures
// can be told apart from any other error. The SDK does wrap them with %w
// ("get identity: get credentials: ..."), but with no type of its own to
// test for, so without this mark a provider's error could not be
// classified without matching text.
type credentialsProvider struct{ p aws.CredentialsProvider }

func (c credentialsProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	cr, err := c.p.Retrieve(ctx)
	if err != nil {
		return cr, &credentialsError{err: err}
	}
	return cr, nil
}

// wrap gives err the operation and relative key as context and classifies
// it. It returns nil for nil.
func wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if kind := classify(err); kind != nil {
		err = &kindError{kind: kind, err: err}
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

// classify returns the sentinel for err, or nil.
func classify(err error) error {
	var ce *credentialsError
	if errors.As(err, &ce) {
		return nil // already matches ErrCredentials
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return iofs.ErrNotExist
		case "AccessDenied", "Forbidden", "AllAccessDisabled":
			return iofs.ErrPermission
		case "PreconditionFailed", "ConditionalRequestConflict":
			return ErrPrecondition
		case "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled",
			"TooManyRequests", "TooManyRequestsException", "ServiceUnavailable", "RequestLimitExceeded":
			return ErrThrottled
		case "ExpiredToken", "TokenRefreshRequired", "InvalidToken", "InvalidAccessKeyId",
			"SignatureDoesNotMatch", "InvalidSecurity":
			return ErrCredentials
		case "NoSuchBucket", "NoSuchUpload":
			// A misconfiguration, or an upload aborted under our feet: not
			// a missing file. Left unclassified (see isNoSuchUpload).
			return nil
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusNotFound:
			return iofs.ErrNotExist
		case http.StatusForbidden:
			return iofs.ErrPermission
		case http.StatusPreconditionFailed:
			return ErrPrecondition
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			return ErrThrottled
		}
	}
	return nil
}

// isNoSuchUpload reports whether err says the multipart upload is gone.
func isNoSuchUpload(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload"
}
