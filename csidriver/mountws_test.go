package csidriver

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"

	"mount-ws/creds"
)

// TestCredentialMessagesClassified feeds exitCodeToGRPC the messages the
// creds package really makes, so a change of wording there fails here.
func TestCredentialMessagesClassified(t *testing.T) {
	api := func(status int) string {
		return (&creds.APIError{Status: status, Type: "x", Source: "token file /t", Workspace: "a/b"}).Error()
	}
	tests := []struct {
		msg  string
		want codes.Code
	}{
		{api(401), codes.Unauthenticated},
		{api(403), codes.PermissionDenied},
		{api(404), codes.NotFound},
		{api(429), codes.Unavailable},
		{api(503), codes.Unavailable},
		{fmt.Errorf("read token file /t: empty: %w", creds.ErrToken).Error(), codes.Unauthenticated},
		{"list workspace a/b at s3://x: AccessDenied: no", codes.PermissionDenied},
		{"request credentials from h: workspace API unavailable: dial tcp: refused", codes.Unavailable},
	}
	for _, tt := range tests {
		if got := exitCodeToGRPC(3, tt.msg); got != tt.want {
			t.Errorf("%q: %v, want %v", tt.msg, got, tt.want)
		}
	}
	for exit, want := range map[int]codes.Code{2: codes.InvalidArgument, 4: codes.Internal, 1: codes.Internal} {
		if got := exitCodeToGRPC(exit, "x"); got != want {
			t.Errorf("exit %d: %v, want %v", exit, got, want)
		}
	}
}
