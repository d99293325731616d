package bucket

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: "m"} }

func statusErr(status int) error {
	return &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      errors.New("no body"),
	}
}

// as the SDK returns them: an operation error around the cause.
func opErr(err error) error {
	return &smithy.OperationError{ServiceID: "S3", OperationName: "GetObject", Err: err}
}

func TestWrapClassifies(t *testing.T) {
	classes := []error{iofs.ErrNotExist, iofs.ErrPermission, ErrPrecondition, ErrThrottled, ErrCredentials}
	tests := []struct {
		name string
		err  error
		want error // nil: none of the classes
	}{
		{"NoSuchKey", apiErr("NoSuchKey"), iofs.ErrNotExist},
		{"NotFound", apiErr("NotFound"), iofs.ErrNotExist},
		{"bare 404", statusErr(404), iofs.ErrNotExist},
		{"NoSuchBucket", apiErr("NoSuchBucket"), nil},
		{"NoSuchUpload", apiErr("NoSuchUpload"), nil},
		{"AccessDenied", apiErr("AccessDenied"), iofs.ErrPermission},
		{"bare 403", statusErr(403), iofs.ErrPermission},
		{"PreconditionFailed", apiErr("PreconditionFailed"), ErrPrecondition},
		{"ConditionalRequestConflict", apiErr("ConditionalRequestConflict"), ErrPrecondition},
		{"bare 412", statusErr(412), ErrPrecondition},
		{"SlowDown", apiErr("SlowDown"), ErrThrottled},
		{"bare 503", statusErr(503), ErrThrottled},
		{"bare 429", statusErr(429), ErrThrottled},
		{"ExpiredToken", apiErr("ExpiredToken"), ErrCredentials},
		{"InvalidAccessKeyId", apiErr("InvalidAccessKeyId"), ErrCredentials},
		{"SignatureDoesNotMatch", apiErr("SignatureDoesNotMatch"), ErrCredentials},
		{"provider failure", fmt.Errorf("get identity: %w", &credentialsError{err: errors.New("api down")}), ErrCredentials},
		{"InternalError", apiErr("InternalError"), nil},
		{"bare 500", statusErr(500), nil},
		{"cancelled", fmt.Errorf("send: %w", context.Canceled), nil},
		{"plain", errors.New("connection refused"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cause := opErr(tt.err)
			err := wrap("get", "dir/k", cause)
			if !errors.Is(err, cause) {
				t.Errorf("%v does not wrap the SDK error", err)
			}
			if !strings.HasPrefix(err.Error(), "get dir/k: ") {
				t.Errorf("message %q lacks the operation and key", err)
			}
			for _, class := range classes {
				if got, want := errors.Is(err, class), class == tt.want; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, class, got, want)
				}
			}
		})
	}
	if wrap("get", "k", nil) != nil {
		t.Error("wrap(nil) is not nil")
	}
}
