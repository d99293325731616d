package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"mount-ws/internal/fusetest"
	"mount-ws/internal/syncbuf"
	"mount-ws/internal/wsstack"
)

// freePort returns a loopback address nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// foreground runs mount-ws in the foreground with args plus the test
// workspace, until the test ends.
func foreground(t *testing.T, mnt string, args ...string) *syncbuf.Buffer {
	t.Helper()
	fusetest.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out syncbuf.Buffer
	args = append(append([]string{"-f", "--api-url", stack.APIURL(), "--token-file", tokenFile(t, token)}, args...), "cmd/ws", mnt)
	go func() { done <- run(ctx, args, &out, &out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mount-ws ended with: %v\n%s", err, out.String())
		}
		// Never let the temporary directory's removal walk into a mount
		// that is still there: it would delete the workspace's files.
		if mounted(mnt) {
			t.Errorf("%s still mounted after mount-ws returned; detaching it", mnt)
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	waitFor(t, "the mount", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("mount-ws ended early: %v\n%s", err, out.String())
		default:
		}
		return mounted(mnt)
	})
	return &out
}

// scrape fetches and parses /metrics strictly, as Prometheus would.
func scrape(t *testing.T, addr string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams, string(body)
}

// sum adds the values of every series of name whose labels include want.
func sum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	total := 0.0
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

func TestMetrics(t *testing.T) {
	mnt := t.TempDir()
	addr := freePort(t)
	foreground(t, mnt, "--metrics-addr", addr, "--data-cache-dir", t.TempDir(), "--data-cache-size-mib", "64")

	// Some I/O: a listing, a read (through the data cache), a write and
	// its upload.
	if _, err := os.ReadDir(filepath.Join(mnt, "csv")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "csv", "iris.csv")); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("metrics\n"), 64<<10)
	if err := os.WriteFile(filepath.Join(mnt, "metrics-test.txt"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	fams, body := scrape(t, addr)
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"mount_ws_s3_requests_total", map[string]string{"operation": "ListObjectsV2", "outcome": "ok"}, 1},
		{"mount_ws_s3_requests_total", map[string]string{"operation": "GetObject", "outcome": "ok"}, 1},
		{"mount_ws_s3_requests_total", map[string]string{"operation": "PutObject", "outcome": "ok"}, 1},
		{"mount_ws_s3_request_duration_seconds", map[string]string{"operation": "GetObject"}, 1},
		{"mount_ws_s3_read_bytes_total", nil, 1},
		{"mount_ws_s3_written_bytes_total", nil, float64(len(data))},
		{"mount_ws_fuse_operations_total", map[string]string{"operation": "lookup", "errno": "ok"}, 1},
		{"mount_ws_fuse_operations_total", map[string]string{"operation": "read", "errno": "ok"}, 1},
		{"mount_ws_fuse_operations_total", map[string]string{"operation": "write", "errno": "ok"}, 1},
		{"mount_ws_fuse_operations_total", map[string]string{"operation": "flush", "errno": "ok"}, 1},
		{"mount_ws_fuse_operation_duration_seconds", map[string]string{"operation": "read"}, 1},
		{"mount_ws_uploads_total", map[string]string{"outcome": "ok"}, 1},
		{"mount_ws_cache_misses_total", map[string]string{"cache": "metadata"}, 1},
		{"mount_ws_cache_misses_total", map[string]string{"cache": "data"}, 1},
		{"mount_ws_data_cache_bytes", nil, 1},
		{"mount_ws_data_cache_limit_bytes", nil, 64 << 20},
		{"mount_ws_credentials_expiry_seconds", nil, 1},
		{"mount_ws_credentials_refreshes_total", map[string]string{"outcome": "ok"}, 1},
		{"mount_ws_credentials_api_responses_total", map[string]string{"status": "200"}, 1},
		{"mount_ws_prefetch_memory_limit_bytes", nil, 16 << 20},
		{"mount_ws_staged_limit_bytes", nil, 1 << 20},
		{"mount_ws_mount_info", map[string]string{"workspace": "cmd/ws", "mountpoint": mnt}, 1},
	} {
		if got := sum(fams, c.name, c.labels); got < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, got, c.min)
		}
	}
	// A file opened for reading only, which nothing writes, is closed
	// without a FLUSH request (FOPEN_NOFLUSH): its close has nothing to
	// upload.
	flushes := sum(fams, "mount_ws_fuse_operations_total", map[string]string{"operation": "flush"})
	for range 3 {
		if _, err := os.ReadFile(filepath.Join(mnt, "csv", "iris.csv")); err != nil {
			t.Fatal(err)
		}
	}
	fams, _ = scrape(t, addr)
	if got := sum(fams, "mount_ws_fuse_operations_total", map[string]string{"operation": "flush"}); got != flushes {
		t.Errorf("3 read-only opens and closes sent %v FLUSH requests, want none", got-flushes)
	}
	// A lookup of a missing name is counted with its errno.
	os.Stat(filepath.Join(mnt, "no-such-file"))
	fams, _ = scrape(t, addr)
	if got := sum(fams, "mount_ws_fuse_operations_total", map[string]string{"operation": "lookup", "errno": "ENOENT"}); got < 1 {
		t.Errorf("lookup ENOENT counted %v times, want at least 1", got)
	}
	for name := range fams {
		if !strings.HasPrefix(name, "mount_ws_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %s is outside mount_ws_ (and the Go runtime's)", name)
		}
	}
	if strings.Contains(body, token) {
		t.Error("the API token is in /metrics")
	}
}

// status runs `mount-ws status args...` and returns its output and exit code.
func status(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"status"}, args...), &out, &errOut)
	code := exitCode(err, &errOut)
	return out.String() + errOut.String(), code
}

func TestStatus(t *testing.T) {
	mnt := t.TempDir()
	foreground(t, mnt)
	// The mount shows in /proc/mounts a moment before its status socket
	// listens.
	waitFor(t, "the status socket", func() bool { _, code := status(t, mnt); return code != 2 })

	out, code := status(t, mnt)
	if code != 0 || !strings.Contains(out, "cmd/ws on "+mnt+": healthy") || !strings.Contains(out, "credentials: valid for") {
		t.Errorf("status of a healthy mount: exit %d\n%s", code, out)
	}

	// An upload the storage refuses: close fails, the data is kept, and
	// status names the file and exits 1 until the retry succeeds.
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpPut}, KeyContains: "refused", Status: 403})
	t.Cleanup(stack.S3.ClearFaults)
	if err := os.WriteFile(filepath.Join(mnt, "refused.txt"), []byte("keep me"), 0o644); err == nil {
		t.Fatal("write of a refused upload succeeded")
	}
	out, code = status(t, mnt)
	if code != 1 || !strings.Contains(out, "refused.txt") || !strings.Contains(out, "1 problem") {
		t.Errorf("status with a failed upload: exit %d, want 1 naming refused.txt\n%s", code, out)
	}
	var r statusReport
	var buf, errBuf bytes.Buffer
	err := run(context.Background(), []string{"status", "--json", mnt}, &buf, &errBuf)
	if exitCode(err, &errBuf) != 1 {
		t.Errorf("status --json exit: %v", err)
	}
	if err := json.Unmarshal(buf.Bytes(), &r); err != nil {
		t.Fatalf("status --json: %v\n%s", err, buf.String())
	}
	if r.Uploads.Failed != 1 || len(r.Uploads.Files) != 1 || r.Uploads.Files[0].Path != "refused.txt" || r.Uploads.Files[0].Error == "" {
		t.Errorf("status --json uploads: %+v", r.Uploads)
	}
	if r.Credentials.ExpiresIn <= 0 || r.Workspace != "cmd/ws" || !strings.Contains(r.Scope, "cmd/ws/") {
		t.Errorf("status --json: %+v", r)
	}
	if r.Totals.S3Requests == 0 || r.Totals.S3Failed == 0 || r.Totals.FUSEOps == 0 || r.Totals.FUSEErrors == 0 {
		t.Errorf("status --json totals: %+v; want requests and failures counted", r.Totals)
	}
	if n := len(r.RecentErrors); n == 0 || r.RecentErrors[n-1].Path != "refused.txt" || r.RecentErrors[n-1].Errno == "" {
		t.Errorf("status --json recent errors: %+v; want the refused upload last", r.RecentErrors)
	}
	// Without a MOUNTPOINT, status reports every mount-ws mount of the
	// user, this one among them (others, of tests running alongside, may
	// not answer: the exit code is theirs too).
	if out, _ := status(t); !strings.Contains(out, "cmd/ws on "+mnt+": 1 problem") {
		t.Errorf("status without a mountpoint does not report %s:\n%s", mnt, out)
	}

	stack.S3.ClearFaults()
	// fsync retries the upload now (the background retry would too, later).
	f, err := os.OpenFile(filepath.Join(mnt, "refused.txt"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Errorf("fsync after the fault cleared: %v", err)
	}
	f.Close()
	if out, code := status(t, mnt); code != 0 {
		t.Errorf("status after the retry: exit %d\n%s", code, out)
	}
}

func TestStatusWithoutMount(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"not mounted", []string{t.TempDir()}, 2, "no mount-ws of yours answers"},
		{"two mountpoints", []string{"/a", "/b"}, 2, "want at most one MOUNTPOINT"},
		{"bad flag", []string{"--nope", "/x"}, 2, "unknown flag"},
		{"help", []string{"--help"}, 0, "Usage: mount-ws status"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, code := status(t, c.args...)
			if code != c.code || !strings.Contains(out, c.msg) {
				t.Errorf("status %v: exit %d, output %q; want exit %d and %q", c.args, code, out, c.code, c.msg)
			}
		})
	}
}
