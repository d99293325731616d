package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"mount-ws/internal/syncbuf"
	"mount-ws/internal/wsstack"
)

// startServe runs "ws-dev serve -data dir -seed=false args..." until the
// test ends or the returned stop is called; it waits for the banner.
func startServe(t *testing.T, dir string, args ...string) (out *syncbuf.Buffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = new(syncbuf.Buffer)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "-data", dir, "-seed=false"}, args...), out, out)
	}()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "stop with Ctrl-C.\n") {
		if time.Now().After(deadline) {
			t.Fatalf("ws-dev did not come up:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return out, stop
}

func TestServeFaultStats(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	out, stop := startServe(t, dir, "-ttl", "2m")
	token, err := os.ReadFile(filepath.Join(dir, tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, tokenFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(out.String(), "--token-file "+filepath.Join(dir, tokenFile)+" demo/ws MOUNTPOINT\n") ||
		!strings.Contains(out.String(), "MOUNTPOINT is a placeholder") {
		t.Errorf("the mount command with a marked placeholder is not printed:\n%s", out.String())
	}
	if strings.Contains(out.String(), strings.TrimSpace(string(token))) {
		t.Errorf("the banner shows the token:\n%s", out.String())
	}
	env, _ := os.ReadFile(filepath.Join(dir, envFile))
	apiURL := strings.TrimPrefix(strings.Split(string(env), "\n")[0], "WS_API_URL=")

	var fout, ferr bytes.Buffer
	if err := run(ctx, []string{"fault", "-data", dir, "api-fail", "429", "1"}, &fout, &ferr); err != nil {
		t.Fatalf("fault: %v %s", err, ferr.String())
	}
	req, _ := http.NewRequest("GET", apiURL+"/api/v1/org/demo/ws/ws/storage/credentials", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	for i, want := range []int{429, 200} {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("request %d: status %d, want %d", i, resp.StatusCode, want)
		}
	}
	fout.Reset()
	if err := run(ctx, []string{"stats", "-data", dir}, &fout, &ferr); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^  answered 429 Too Many Requests +1$`).MatchString(fout.String()) ||
		!regexp.MustCompile(`(?m)^  credentials minted +1$`).MatchString(fout.String()) {
		t.Errorf("stats table:\n%s", fout.String())
	}
	fout.Reset()
	if err := run(ctx, []string{"stats", "-data", dir, "-json"}, &fout, &ferr); err != nil {
		t.Fatal(err)
	}
	var st wsstack.ControlStats
	if err := json.Unmarshal(fout.Bytes(), &st); err != nil || st.API.ByStatus[429] != 1 || st.API.Minted != 1 {
		t.Errorf("stats -json: %+v (%v): %s", st, err, fout.String())
	}

	// "fault clear" takes back every fault, the TTL to serve's -ttl too.
	for _, f := range [][]string{{"ttl", "3s"}, {"api-latency", "5s"}, {"api-fail", "503", "3"}, {"s3-fail", "503"}, {"api-down", "30s"}, {"clear"}} {
		if err := run(ctx, append([]string{"fault", "-data", dir}, f...), &fout, &ferr); err != nil {
			t.Fatalf("fault %q: %v %s", f, err, ferr.String())
		}
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("credentials after fault clear: %v", err)
	}
	var creds wsstack.CredentialsResponse
	err = json.NewDecoder(resp.Body).Decode(&creds)
	resp.Body.Close()
	exp, _ := time.Parse(time.RFC3339, creds.Expiration)
	if ttl := time.Until(exp); resp.StatusCode != http.StatusOK || err != nil || ttl < 110*time.Second || ttl > 2*time.Minute {
		t.Errorf("credentials after fault clear: status %d (%v), expire in %v, want the -ttl of 2m", resp.StatusCode, err, ttl)
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{envFile, controlFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after stop: %v, want it removed", name, err)
		}
	}
}

// With -mountpoint the printed mount command is the one to run.
func TestBannerMountpoint(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	out, _ := startServe(t, dir, "-mountpoint", mnt)
	want := "  mount-ws --api-url http://127.0.0.1:"
	line := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, want) {
			line = l
		}
	}
	if !strings.HasSuffix(line, " --token-file "+filepath.Join(dir, tokenFile)+" demo/ws "+mnt) {
		t.Errorf("mount command %q, want it to mount at %s:\n%s", line, mnt, out.String())
	}
	if strings.Contains(out.String(), "MOUNTPOINT") {
		t.Errorf("placeholder printed although -mountpoint was given:\n%s", out.String())
	}
}

// A second server on a data dir in use is refused and names the first; the
// first stays reachable, also as "ws-dev -data DIR stats".
func TestDataDirInUse(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	startServe(t, dir)
	env, err := os.ReadFile(filepath.Join(dir, envFile))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = run(ctx, []string{"-data", dir, "-seed=false"}, &out, &out)
	pid := fmt.Sprintf("pid %d", os.Getpid())
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), pid) ||
		!strings.Contains(err.Error(), "ws-dev stats -data "+dir) {
		t.Fatalf("second server: %v, want an in-use error naming %s and how to reach it", err, pid)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, envFile)); !bytes.Equal(again, env) {
		t.Errorf("env file changed by the refused server:\n%s\nwas:\n%s", again, env)
	}
	out.Reset()
	if err := run(ctx, []string{"-data", dir, "stats"}, &out, &out); err != nil {
		t.Fatalf("ws-dev -data DIR stats: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "minted") {
		t.Errorf("ws-dev -data DIR stats printed:\n%s", out.String())
	}
}

// A stopping server leaves an env file that is not its own.
func TestStopKeepsForeignEnv(t *testing.T) {
	dir := t.TempDir()
	_, stop := startServe(t, dir)
	foreign := []byte("WS_API_URL=http://127.0.0.1:1\nWS_DEV_PID=1\n")
	if err := os.WriteFile(filepath.Join(dir, envFile), foreign, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, envFile)); err != nil || !bytes.Equal(got, foreign) {
		t.Errorf("foreign env file after stop: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, controlFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("own %s after stop: %v, want it removed", controlFile, err)
	}
}

func TestArgumentsAfterFlags(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"-data", dir, "stats"}, "no running ws-dev with data dir " + dir},
		{[]string{"-data", dir, "fault", "clear"}, "no running ws-dev with data dir " + dir},
		{[]string{"-data", dir, "stats", "-data", dir + "/x"}, "no running ws-dev with data dir " + dir + "/x"},
		{[]string{"-data", dir, "statz"}, `unexpected argument "statz"`},
		{[]string{"-ttl", "1m", "stats"}, "stats does not take serve's flags (-ttl)"},
		{[]string{"serve", "-data", dir, "stats"}, `serve: unexpected argument "stats"`},
		{[]string{"-data", dir, "serve", "x"}, `unexpected argument "serve"`},
		{[]string{"-data", dir, "-ttl", "0s", "serve"}, "-ttl 0s: must be at least 1s"}, // serves
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := run(context.Background(), tt.args, &out, &out)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: %v, want %q", tt.args, err, tt.wantErr)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, lockFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a server was started: %v", err)
	}
}

func TestParseFault(t *testing.T) {
	tests := []struct {
		args    string
		wantErr string
	}{
		{"api-fail 503 3 2", ""},
		{"api-fail", "needs 1"},
		{"api-fail x", "not a status"},
		{"api-fail 500 -1", "not a count"},
		{"api-malformed 2", ""},
		{"api-wrong-scope b p/ 2", ""},
		{"api-wrong-scope b", "needs 2"},
		{"s3-fail 503 0 get put", ""},
		{"s3-stall 5s", ""},
		{"revoke demo/ws", ""},
		{"explode", "unknown action"},
		{"", "name an action"},
	}
	for _, tt := range tests {
		req, err := parseFault(strings.Fields(tt.args))
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%q: error %v, want %q", tt.args, err, tt.wantErr)
		}
		if tt.args == "s3-fail 503 0 get put" && (req.S3Fault == nil || len(req.S3Fault.Ops) != 2 || req.S3Fault.Ops[0] != "GET") {
			t.Errorf("s3-fail ops: %+v", req.S3Fault)
		}
		if tt.args == "api-fail 503 3 2" && (req.APIFail.Status != 503 || req.APIFail.Count != 3 || req.APIFail.RetryAfter != "2") {
			t.Errorf("api-fail: %+v", req.APIFail)
		}
	}
}

// Help that was asked for goes to stdout and is no error (exit 0); it lists
// every command.
func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"-h"}, nil},
		{[]string{"--help"}, nil},
		{[]string{"help"}, nil},
		{[]string{"serve", "-h"}, nil},
		{[]string{"-data", "x", "--help"}, nil},
		{[]string{"fault", "-h"}, []string{"api-fail STATUS", "api-down DURATION", "clear", "-data"}},
		{[]string{"stats", "--help"}, []string{"-json", "-data"}},
	}
	commands := []string{"\n  serve ", "\n  fault ", "\n  stats ", "\n  help ", "Flags of serve:", "-ttl duration"}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), tt.args, &stdout, &stderr); err != nil {
			t.Errorf("%q: %v, want success", tt.args, err)
		}
		want := tt.want
		if want == nil {
			want = commands
		}
		for _, w := range want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("%q: help lacks %q:\n%s", tt.args, w, stdout.String())
			}
		}
		if stderr.Len() > 0 {
			t.Errorf("%q: wrote to stderr:\n%s", tt.args, stderr.String())
		}
	}

	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"explode"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), `unknown command "explode"`) {
		t.Errorf("unknown command: %v", err)
	}
	if stdout.Len() > 0 || !strings.Contains(stderr.String(), "Commands:") {
		t.Errorf("unknown command: help on stdout %q, stderr %q; want it on stderr", stdout.String(), stderr.String())
	}
}
