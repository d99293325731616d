package csidriver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// runMountWS runs mount-ws in its background mode with args. mount-ws
// returns once the mount answers (exit 0), or fails with one line on
// stderr and an exit code (2 usage, 3 credentials, 4 mount), which
// becomes a gRPC status carrying that line. The environment is empty but
// for PATH: nothing of the driver's (no WS_TOKEN) reaches mount-ws.
func (d *Driver) runMountWS(ctx context.Context, args []string) error {
	cmd := exec.CommandContext(ctx, d.cfg.MountWS, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		d.log.Debug("mount-ws said", "stdout", strings.TrimSpace(stdout.String()))
		return nil
	}
	msg := mountWSMessage(stderr.String())
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return status.Errorf(codes.Internal, "run %s: %v", d.cfg.MountWS, err)
	}
	if msg == "" {
		msg = fmt.Sprintf("mount-ws failed (%v) without a message", err)
	}
	return status.Error(exitCodeToGRPC(exit.ExitCode(), msg), msg)
}

// mountWSMessage is mount-ws's own message: its stderr without the
// "see mount-ws --help" hint, on one line.
func mountWSMessage(stderr string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if l = strings.TrimSpace(l); l != "" && l != "see mount-ws --help" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "; ")
}

// credentialKinds classifies mount-ws's credentials failures (exit 3) by
// its message, which names the workspace API's HTTP status as
// "(401 ...)" (creds.APIError) or carries a creds sentinel's text; a test
// checks both against the creds package. Text is all that crosses the
// process boundary: the exit code alone cannot tell a bad token from an
// unreachable API.
var credentialKinds = []struct {
	text string
	code codes.Code
}{
	{"(401 ", codes.Unauthenticated},
	{"no usable token", codes.Unauthenticated},
	{"(403 ", codes.PermissionDenied},
	{"AccessDenied", codes.PermissionDenied}, // the storage refused the listing
	{"(404 ", codes.NotFound},
	{"(429 ", codes.Unavailable},
}

// exitCodeToGRPC maps mount-ws's exit code (and, for credentials, its
// message) to a gRPC code.
func exitCodeToGRPC(exit int, msg string) codes.Code {
	switch exit {
	case 2:
		return codes.InvalidArgument
	case 3:
		for _, k := range credentialKinds {
			if strings.Contains(msg, k.text) {
				return k.code
			}
		}
		return codes.Unavailable // storage or API unreachable: worth retrying
	default: // 4 mount, 1 unexpected
		return codes.Internal
	}
}
