package creds

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"mount-ws/internal/wsstack"
)

// The embedded gateway can run once per process, so the integration tests
// share one local workspace stack, started here. Its credential TTL is
// global: integration tests set it and must not run in parallel.
var (
	testStack    *wsstack.Stack
	testStackErr error
)

// Workspaces of the shared stack.
var (
	stackWS      = wsstack.Workspace{Org: "acme", WS: "data", Tokens: []string{testToken}}
	stackOtherWS = wsstack.Workspace{Org: "acme", WS: "other", Tokens: []string{"token-other"}}
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "creds-stack-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	testStack, testStackErr = wsstack.Start(ctx, wsstack.Config{
		DataDir:    dir,
		TTL:        time.Hour,
		Workspaces: []wsstack.Workspace{stackWS, stackOtherWS},
	})
	cancel()
	code := m.Run()
	if testStack != nil {
		if err := testStack.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close stack:", err)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// needStack returns the shared stack with its faults cleared and the given
// credential TTL, or ends the test: skipped under -short, failed if the
// stack could not start.
func needStack(t *testing.T, ttl time.Duration) *wsstack.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test against the local workspace stack; not run with -short")
	}
	if testStackErr != nil {
		t.Fatalf("local workspace stack did not start: %v", testStackErr)
	}
	testStack.API.ClearFaults()
	testStack.S3.ClearFaults()
	testStack.API.SetTTL(ttl)
	t.Cleanup(func() {
		testStack.API.ClearFaults()
		testStack.S3.ClearFaults()
		testStack.API.SetTTL(time.Hour)
	})
	return testStack
}

// stackConfig is a Config for the shared stack's workspace ws.
func stackConfig(s *wsstack.Stack, ws wsstack.Workspace, token string) Config {
	return Config{
		APIURL:           s.APIURL(),
		Org:              ws.Org,
		Workspace:        ws.WS,
		TokenSource:      StaticToken(Secret(token), "environment variable WS_TOKEN"),
		Version:          "1.2.3",
		RequestTimeout:   2 * time.Second,
		MountRetryBound:  5 * time.Second,
		ExpiredWaitBound: 2 * time.Second,
	}
}
