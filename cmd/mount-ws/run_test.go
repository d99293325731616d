package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mount-ws/internal/fusetest"
	"mount-ws/internal/syncbuf"
	"mount-ws/internal/wsstack"
)

var stack *wsstack.Stack

const token = "cmd-test-token"

func TestMain(m *testing.M) {
	// The background mode re-executes this binary: act as mount-ws then.
	if os.Getenv("MOUNT_WS_TEST_AS_MAIN") == "1" {
		main()
		return
	}
	if dir := os.Getenv(otherFUSEEnv); dir != "" {
		serveOtherFUSE(dir)
	}
	dir, err := os.MkdirTemp("", "cmd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stack, err = wsstack.Start(context.Background(), wsstack.Config{
		DataDir:    dir,
		Workspaces: []wsstack.Workspace{{Org: "cmd", WS: "ws", Tokens: []string{token}}, {Org: "cmd", WS: "other"}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start stack:", err)
		os.Exit(1)
	}
	if _, err := stack.SeedDemo(context.Background(), wsstack.Workspace{Org: "cmd", WS: "ws"}); err != nil {
		fmt.Fprintln(os.Stderr, "seed:", err)
		os.Exit(1)
	}
	code := m.Run()
	stack.Close()
	os.RemoveAll(dir)
	os.Exit(code)
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

func TestCommandLineErrors(t *testing.T) {
	good := tokenFile(t, token)
	emptyDir := t.TempDir()
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o600)
	file := filepath.Join(full, "x")
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no args", nil, 2, "want ORG/WS and MOUNTPOINT"},
		{"one arg", []string{"cmd/ws"}, 2, "want ORG/WS and MOUNTPOINT"},
		{"bad flag", []string{"--nope", "cmd/ws", emptyDir}, 2, "unknown flag: --nope"},
		{"bad mount option", []string{"-o", "ro,bogus=1", "cmd/ws", emptyDir}, 2, `unknown mount option "bogus"`},
		{"mount option without a value", []string{"-o", "uid", "cmd/ws", emptyDir}, 2, "needs a value"},
		{"bad slug", []string{"--api-url", stack.APIURL(), "cmd", emptyDir}, 2, "ORG/WS"},
		{"bad mode", []string{"--api-url", stack.APIURL(), "--file-mode", "999", "cmd/ws", emptyDir}, 2, "octal"},
		{"no api url", []string{"cmd/ws", emptyDir}, 2, "--api-url"},
		{"missing mountpoint", []string{"--api-url", stack.APIURL(), "cmd/ws", emptyDir + "/nope"}, 4, "does not exist"},
		{"mountpoint not empty", []string{"--api-url", stack.APIURL(), "cmd/ws", full}, 4, "not empty"},
		{"mountpoint is a file", []string{"--api-url", stack.APIURL(), "cmd/ws", file}, 4, "not a directory"},
		// The README's credential table, message by message.
		{"wrong token", []string{"-f", "--api-url", stack.APIURL(), "--token-file", tokenFile(t, "wrong"), "cmd/ws", emptyDir}, 3, "the workspace API rejected the token from"},
		{"no access", []string{"-f", "--api-url", stack.APIURL(), "--token-file", good, "cmd/other", emptyDir}, 3, "has no access to workspace cmd/other"},
		{"no such workspace", []string{"-f", "--api-url", stack.APIURL(), "--token-file", good, "cmd/nope", emptyDir}, 3, "workspace cmd/nope does not exist"},
		{"validation error", []string{"-f", "--api-url", stack.APIURL(), "--token-file", good, "cmd/ws", emptyDir}, 3, "the workspace API refused the request"},
		{"upgrade required", []string{"-f", "--api-url", stack.APIURL(), "--token-file", good, "cmd/ws", emptyDir}, 3, "is too old for the workspace API"},
		{"bad request", []string{"-f", "--api-url", stack.APIURL(), "--token-file", good, "cmd/ws", emptyDir}, 3, "(400 "},
		{"conflict", []string{"-f", "--api-url", stack.APIURL(), "--token-file", good, "cmd/ws", emptyDir}, 3, "(409 "},
		{"malformed answer", []string{"-f", "--api-url", stack.APIURL(), "--token-file", good, "cmd/ws", emptyDir}, 3, "invalid"},
		{"method not allowed", []string{"-f", "--api-url", stack.APIURL(), "--token-file", good, "cmd/ws", emptyDir}, 3, "does not serve credentials at this URL"},
		{"redirect", []string{"-f", "--api-url", stack.APIURL(), "--token-file", good, "cmd/ws", emptyDir}, 3, "redirected the request"},
		{"unavailable past --mount-wait", []string{"-f", "--api-url", stack.APIURL(), "--token-file", good, "--mount-wait", "1s", "cmd/ws", emptyDir}, 3, "the workspace API is unavailable (502"},
		// Refused before any request: "http" alone would also match the
		// failed lookup of a request that was sent.
		{"http to a remote API", []string{"-f", "--api-url", "http://example.invalid", "--token-file", good, "cmd/ws", emptyDir}, 3, "uses plain http to a non-loopback host"},
	}
	// The API answers these statuses only when told to.
	inject := map[string]int{"validation error": 422, "upgrade required": 426, "bad request": 400, "conflict": 409, "method not allowed": 405, "redirect": 302}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, ok := inject[tt.name]; ok {
				stack.API.FailNext(1, status)
			}
			if tt.name == "malformed answer" {
				stack.API.InjectNext(1, wsstack.Fault{Kind: wsstack.FaultMalformedJSON})
			}
			if tt.name == "unavailable past --mount-wait" {
				stack.API.FailNext(1000, 502) // more than the retries of a second
				defer stack.API.ClearFaults()
			}
			var out, errOut bytes.Buffer
			start := time.Now()
			err := run(context.Background(), tt.args, &out, &errOut)
			code := exitCode(err, &errOut)
			if took := time.Since(start); tt.name == "unavailable past --mount-wait" && took > 10*time.Second {
				// The default bound is 20 s; 10 leaves a slow machine room.
				t.Errorf("gave up after %s with --mount-wait 1s", took.Round(time.Millisecond))
			}
			if code != tt.code || !strings.Contains(errOut.String(), tt.msg) {
				t.Errorf("exit %d, want %d; stderr %q should contain %q", code, tt.code, errOut.String(), tt.msg)
			}
			if strings.Contains(errOut.String(), token) {
				t.Error("the token appears in the error output")
			}
			if ents, _ := os.ReadDir(emptyDir); len(ents) != 0 {
				t.Error("something was mounted or written in the mountpoint")
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, &out, &out); err != nil || !strings.HasPrefix(out.String(), "mount-ws ") {
		t.Errorf("--version: %q %v", out.String(), err)
	}
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

func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/mounts")
	return strings.Contains(string(b), " "+dir+" ")
}

func TestForegroundMountUntilSignal(t *testing.T) {
	fusetest.Require(t)
	mnt := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var errOut syncbuf.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--foreground", "--read-only", "--api-url", stack.APIURL(), "--token-file", tokenFile(t, token), "cmd/ws", mnt}, &errOut, &errOut)
	}()
	waitFor(t, "the mount", func() bool { return mounted(mnt) })
	got, err := os.ReadFile(filepath.Join(mnt, "csv/iris.csv"))
	if err != nil || !strings.HasPrefix(string(got), "sepal_length,") {
		t.Errorf("read through the mount: %v", err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "new.txt"), nil, 0o644); !errorsIs(err, syscall.EROFS) {
		t.Errorf("write on --read-only: %v, want EROFS", err)
	}
	cancel() // as SIGTERM does
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after signal: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after the signal")
	}
	if mounted(mnt) {
		t.Error("still mounted after the signal")
	}
	if strings.Contains(errOut.String(), token) {
		t.Error("token in the log")
	}
}

func TestBackgroundMountThenUmount(t *testing.T) {
	fusetest.Require(t)
	mnt := t.TempDir()
	self, _ := os.Executable()
	cmd := exec.Command(self, "--api-url", stack.APIURL(), "--token-file", tokenFile(t, token), "--log-file", filepath.Join(t.TempDir(), "log"), "cmd/ws", mnt)
	cmd.Env = append(os.Environ(), "MOUNT_WS_TEST_AS_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("background mount: %v: %s", err, out)
	}
	// The parent returned only once the mount was ready, and said where
	// the log is, in one line.
	if !mounted(mnt) {
		t.Fatal("parent returned before the mount was ready")
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "mounted at "+mnt) || !strings.Contains(lines[0], "log: ") {
		t.Errorf("background mount printed %q; want one line naming the mountpoint and the log", out)
	}
	t.Cleanup(func() {
		if mounted(mnt) {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	ents, err := os.ReadDir(filepath.Join(mnt, "many", "part-00"))
	if err != nil || len(ents) != 500 {
		t.Errorf("ls many/part-00: %d entries, %v", len(ents), err)
	}
	if err := syscall.Unmount(mnt, 0); err != nil {
		t.Fatalf("umount: %v", err)
	}
	waitFor(t, "the background process to exit", func() bool {
		out, err := exec.Command("pgrep", "-f", "cmd/ws "+mnt).Output()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee) && ee.ExitCode() == 1:
			return true // pgrep: no process matched
		case err != nil:
			// Without pgrep this check would pass whatever happened.
			t.Fatalf("pgrep: %v (install procps)", err)
		}
		return len(bytes.TrimSpace(out)) == 0
	})
}

func TestBackgroundMountReportsFailure(t *testing.T) {
	fusetest.Require(t)
	mnt := t.TempDir()
	self, _ := os.Executable()
	cache := t.TempDir()
	cmd := exec.Command(self, "--api-url", stack.APIURL(), "--token-file", tokenFile(t, "bad-token"), "cmd/ws", mnt)
	cmd.Env = append(os.Environ(), "MOUNT_WS_TEST_AS_MAIN=1", "XDG_CACHE_HOME="+cache)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 || !strings.Contains(string(out), "token") {
		t.Errorf("background mount with a bad token: %v, output %q; want exit 3 and the reason", err, out)
	}
	if mounted(mnt) {
		t.Error("mounted despite the failure")
	}
	if logs, _ := filepath.Glob(filepath.Join(cache, "mount-ws", "*.log")); len(logs) != 0 {
		t.Errorf("a failed mount left log files behind: %q", logs)
	}
}

// TestJSONLog checks --log-format json: every line is one JSON object, and
// no secret is in any of them.
func TestJSONLog(t *testing.T) {
	fusetest.Require(t)
	mnt := t.TempDir()
	logFile := filepath.Join(t.TempDir(), "log")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var errOut syncbuf.Buffer
	go func() {
		done <- run(ctx, []string{"-f", "--log-format", "json", "--log-level", "debug", "--log-file", logFile,
			"--api-url", stack.APIURL(), "--token-file", tokenFile(t, token), "cmd/ws", mnt}, &errOut, &errOut)
	}()
	waitFor(t, "the mount", func() bool { return mounted(mnt) })
	if _, err := os.ReadDir(filepath.Join(mnt, "csv")); err != nil {
		t.Error(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v (%s)", err, errOut.String())
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 {
		t.Fatalf("log has %d lines: %q", len(lines), b)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["msg"] == nil {
			t.Errorf("log line is not a JSON event: %q (%v)", l, err)
		}
	}
	if strings.Contains(string(b), token) {
		t.Error("the API token is in the log")
	}
}

func errorsIs(err error, target syscall.Errno) bool {
	pe, ok := err.(*os.PathError)
	return ok && pe.Err == target
}

// TestSystemdNotify checks READY=1 on $NOTIFY_SOCKET once the mount
// answers, and STOPPING=1 when it goes.
func TestSystemdNotify(t *testing.T) {
	fusetest.Require(t)
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	mnt := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var errOut syncbuf.Buffer
	go func() {
		done <- run(ctx, []string{"-f", "--read-only", "--api-url", stack.APIURL(), "--token-file", tokenFile(t, token), "cmd/ws", mnt}, &errOut, &errOut)
	}()
	receive := func() string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v (%s)", err, errOut.String())
		}
		return string(buf[:n])
	}
	if got := receive(); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	if ents, err := os.ReadDir(filepath.Join(mnt, "csv")); err != nil || len(ents) == 0 {
		t.Errorf("after READY=1 the mount does not answer: %v", err)
	}
	cancel()
	if got := receive(); got != "STOPPING=1" {
		t.Errorf("notification at unmount %q, want STOPPING=1", got)
	}
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}
