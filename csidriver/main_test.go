package csidriver

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mount-ws/internal/fusetest"
	"mount-ws/internal/syncbuf"
	"mount-ws/internal/wsstack"
	"mount-ws/mounttab"
)

// The local workspace stack and the mount-ws binary every test uses.
var (
	stack      *wsstack.Stack
	mountWSBin string
)

// testToken is granted csi/ws and csi/two, not csi/other. It is long and
// odd so that finding it in a log means a leak, not a coincidence.
const testToken = "csi-test-token-7f3a9b2e51c04d86"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "csidriver-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The driver runs mount-ws as a program, as in production: build it once.
	mountWSBin = filepath.Join(dir, "mount-ws")
	if out, err := exec.Command("go", "build", "-o", mountWSBin, "mount-ws/cmd/mount-ws").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build mount-ws: %v\n%s", err, out)
		return 1
	}
	stack, err = wsstack.Start(context.Background(), wsstack.Config{
		DataDir: filepath.Join(dir, "stack"),
		Workspaces: []wsstack.Workspace{
			{Org: "csi", WS: "ws", Tokens: []string{testToken}},
			{Org: "csi", WS: "two", Tokens: []string{testToken}},
			{Org: "csi", WS: "other"},
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start stack:", err)
		return 1
	}
	defer stack.Close()
	return m.Run()
}

// testDriver is a driver serving on a socket of its own, with its log
// captured.
type testDriver struct {
	*Driver
	endpoint string
	logs     *syncbuf.Buffer
	stateDir string
	tokenDir string
}

// startDriver serves a driver until the test ends. Its kubelet dir is
// root, under which the tests put their targets.
func startDriver(t *testing.T, root string) *testDriver {
	t.Helper()
	fusetest.Require(t)
	base := t.TempDir()
	logs := &syncbuf.Buffer{}
	d, err := New(Config{
		NodeID:        "test-node",
		Version:       "test",
		MountWS:       mountWSBin,
		StateDir:      filepath.Join(base, "state"),
		TokenDir:      filepath.Join(base, "tokens"),
		KubeletDir:    root,
		DefaultAPIURL: stack.APIURL(),
		UnmountWait:   30 * time.Second,
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	// A short socket path: unix socket paths are limited to 108 bytes.
	sockDir, err := os.MkdirTemp("", "csi-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	endpoint := "unix://" + filepath.Join(sockDir, "csi.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, endpoint) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if strings.Contains(logs.String(), testToken) {
			t.Errorf("the token appears in the driver's log")
		}
	})
	waitFor(t, "the driver's socket", func() bool {
		_, err := os.Stat(strings.TrimPrefix(endpoint, "unix://"))
		return err == nil
	})
	return &testDriver{Driver: d, endpoint: endpoint, logs: logs, stateDir: filepath.Join(base, "state"), tokenDir: filepath.Join(base, "tokens")}
}

// waitFor polls cond until it holds or 20 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tokenFile writes tok to a private file and returns its path.
func tokenFile(t *testing.T, tok string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// isMounted reports whether a mount-ws mount is at path.
func isMounted(t *testing.T, path string) bool {
	t.Helper()
	mounts, err := mounttab.Read()
	if err != nil {
		t.Fatal(err)
	}
	m, ok := mounttab.Top(mounts, mounttab.Canonical(path))
	return ok && m.IsMountWS()
}
