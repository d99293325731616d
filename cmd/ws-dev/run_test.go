package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mount-ws/internal/syncbuf"
)

func TestServeFaultStats(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out syncbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "-data", dir, "-seed=false", "-ttl", "2m"}, &out, &out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "Mount demo/ws with:") {
		if time.Now().After(deadline) {
			t.Fatalf("ws-dev did not come up:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	token, err := os.ReadFile(filepath.Join(dir, tokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, tokenFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	if !strings.Contains(out.String(), "--token-file "+filepath.Join(dir, tokenFile)+" demo/ws /mnt/ws") {
		t.Errorf("the mount command is not printed:\n%s", out.String())
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
	if !strings.Contains(fout.String(), `"429":1`) || !strings.Contains(fout.String(), `"minted":1`) {
		t.Errorf("stats: %s", fout.String())
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
