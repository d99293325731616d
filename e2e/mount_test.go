package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mount-ws/internal/fusetest"
	"mount-ws/internal/wsstack"
)

// workspace is one test's own workspace of the shared stack.
type workspace struct {
	org, name string
	prefix    string // its key prefix in env.bucket, ending in "/"
	token     string
	tokenFile string
}

var wsCounter atomic.Int64

// newWorkspace registers a fresh workspace named after the test, with a
// token of its own in a private file.
func newWorkspace(t *testing.T) *workspace {
	t.Helper()
	fusetest.Require(t)
	name := slug(t.Name(), 50) + fmt.Sprintf("-%d", wsCounter.Add(1))
	w := &workspace{org: "e2e", name: name, prefix: "e2e/" + name + "/", token: "e2e-token-" + name}
	env.addPrefix(w.prefix)
	if err := env.stack.AddWorkspace(context.Background(), wsstack.Workspace{Org: w.org, WS: w.name, Tokens: []string{w.token}}); err != nil {
		t.Fatalf("add workspace %s/%s: %v", w.org, w.name, err)
	}
	w.tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(w.tokenFile, []byte(w.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// slug turns a test name into 1-max lowercase letters, digits and hyphens.
func slug(s string, max int) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		switch {
		case ok:
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= max {
			break
		}
	}
	return strings.Trim(b.String(), "-")
}

// key is the full bucket key of a path relative to the workspace root.
func (w *workspace) key(rel string) string { return w.prefix + rel }

// mountOpts are the choices a test makes about one mount.
type mountOpts struct {
	readOnly bool
	// cacheDir is the staging directory; a fresh t.TempDir when empty.
	cacheDir string
	// extra flags, appended before ORG/WS MOUNTPOINT.
	extra []string
}

// mount is one running mount-ws process in the foreground.
type mount struct {
	ws      *workspace
	dir     string // the mountpoint
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited; then waitErr is set
	waitErr error
	stopped bool // unmounted or killed already
}

// mountWS starts mount-ws on a fresh mountpoint, waits until the kernel lists
// the mount and unmounts at cleanup. A mount that fails to come up fails the
// test with the process's log.
func mountWS(t *testing.T, w *workspace, o mountOpts) *mount {
	t.Helper()
	// Not t.TempDir: removing a directory that is still mounted would
	// delete the workspace's files. Removed only once unmounted.
	dir, err := os.MkdirTemp("", "e2e-mnt-")
	if err != nil {
		t.Fatal(err)
	}
	if o.cacheDir == "" {
		o.cacheDir = t.TempDir()
	}
	m := &mount{ws: w, dir: dir, logPath: filepath.Join(t.TempDir(), "mount-ws.log"), exited: make(chan struct{})}
	args := []string{"--foreground", "--api-url", env.stack.APIURL(), "--token-file", w.tokenFile,
		"--cache-dir", o.cacheDir, "--log-level", "debug"}
	if o.readOnly {
		args = append(args, "--read-only")
	}
	args = append(args, o.extra...)
	args = append(args, w.org+"/"+w.name, dir)
	logFile, err := os.Create(m.logPath)
	if err != nil {
		t.Fatal(err)
	}
	m.cmd = exec.Command(env.bin, args...)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	m.cmd.Dir = "/"
	if err := m.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start mount-ws: %v", err)
	}
	go func() {
		m.waitErr = m.cmd.Wait()
		logFile.Close()
		close(m.exited)
	}()
	t.Cleanup(func() {
		m.unmount(t)
		if log, err := os.ReadFile(m.logPath); err == nil {
			wantNoSecrets(t, "mount-ws's log "+m.logPath, string(log), w.token)
		}
		if t.Failed() {
			m.dumpLog(t)
			m.keepLog(t)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !isMounted(dir) {
		select {
		case <-m.exited:
			m.stopped = true
			t.Fatalf("mount-ws %s exited before mounting: %v (log below)", strings.Join(args, " "), m.waitErr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount-ws did not mount %s within 30 s (log below)", dir)
		}
	}
	// The mount is in the table before mount-ws has answered the
	// kernel's INIT; a stat waits for that. A test that only went
	// through the kernel's permission checks and unmounted before INIT
	// was answered made mount-ws fail its mount (seen under load).
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("stat of the new mount %s: %v", dir, err)
	}
	return m
}

// path is the absolute path of rel inside the mount.
func (m *mount) path(rel string) string { return filepath.Join(m.dir, rel) }

// unmount unmounts (retrying while busy) and waits for mount-ws to exit 0.
// It is idempotent.
func (m *mount) unmount(t *testing.T) {
	t.Helper()
	if m.stopped {
		return
	}
	err := m.stop(t)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == 66 && raceEnabled:
		t.Errorf("mount-ws exited with status 66 after the unmount: the race detector found a data race in it (report below)")
	case err != nil:
		t.Errorf("mount-ws exited with %v after the unmount, want exit status 0", err)
	}
}

// stop unmounts (retrying while busy), waits for mount-ws to exit and
// returns how it exited.
func (m *mount) stop(t *testing.T) error {
	t.Helper()
	m.stopped = true
	if !isMounted(m.dir) {
		// It never mounted (or lost its mount): stop it as SIGTERM does.
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(10 * time.Second):
			m.cmd.Process.Kill()
			<-m.exited
		}
		os.Remove(m.dir)
		return m.waitErr
	}
	var err error
	for i := 0; i < 100; i++ {
		if err = syscall.Unmount(m.dir, 0); !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil && isMounted(m.dir) {
		t.Errorf("unmount %s: %v; detaching it", m.dir, err)
		syscall.Unmount(m.dir, syscall.MNT_DETACH)
	}
	select {
	case <-m.exited:
	case <-time.After(60 * time.Second):
		t.Errorf("mount-ws still running 60 s after the unmount; killing it")
		m.cmd.Process.Kill()
		<-m.exited
	}
	if !isMounted(m.dir) {
		os.Remove(m.dir)
	}
	return m.waitErr
}

// kill sends SIGKILL to mount-ws, waits for it to die and detaches the dead
// mount.
func (m *mount) kill(t *testing.T) {
	t.Helper()
	if m.stopped {
		t.Fatal("kill: mount-ws is not running")
	}
	m.stopped = true
	if err := m.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("kill -9 mount-ws: %v", err)
	}
	<-m.exited
	if err := syscall.Unmount(m.dir, syscall.MNT_DETACH); err != nil && isMounted(m.dir) {
		t.Errorf("detach the dead mount %s: %v", m.dir, err)
	}
	if !isMounted(m.dir) {
		os.Remove(m.dir)
	}
}

// remount unmounts m and mounts the same workspace again with o, so that
// what follows reads the bucket, not the old mount's caches.
func (m *mount) remount(t *testing.T, o mountOpts) *mount {
	t.Helper()
	m.unmount(t)
	return mountWS(t, m.ws, o)
}

// dumpLog logs the tail of mount-ws's output.
func (m *mount) dumpLog(t *testing.T) {
	t.Helper()
	f, err := os.Open(m.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	splices := 0
	for sc.Scan() {
		// go-fuse's note that a read did not fit a pipe is noise here.
		if strings.Contains(sc.Text(), "trySplice: splice: want") {
			splices++
			continue
		}
		lines = append(lines, sc.Text())
	}
	if splices > 0 {
		lines = append(lines, fmt.Sprintf("(%d go-fuse trySplice lines left out)", splices))
	}
	// A binary built with -race reports races on stderr and exits 66:
	// show the first report whole, then less of the tail.
	tail := 60
	for i, l := range lines {
		if strings.Contains(l, "WARNING: DATA RACE") {
			end := min(len(lines), i+120)
			t.Logf("mount-ws found a data race (lines %d-%d of its log of %s):\n%s", i+1, end, m.dir, strings.Join(lines[i:end], "\n"))
			tail = 10
			break
		}
	}
	if len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	t.Logf("last %d lines of the mount-ws log of %s:\n%s", len(lines), m.dir, strings.Join(lines, "\n"))
}

// keepLog copies the whole log of a failed test out of its temporary
// directory, which is removed, into $TMPDIR/mount-ws-e2e-logs.
func (m *mount) keepLog(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		return
	}
	dir := filepath.Join(os.TempDir(), "mount-ws-e2e-logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	p := filepath.Join(dir, slug(t.Name(), 80)+"-"+filepath.Base(m.dir)+".log")
	if err := os.WriteFile(p, b, 0o644); err == nil {
		t.Logf("the whole mount-ws log is kept in %s", p)
	}
}

// isMounted reports whether /proc/mounts lists dir as a mountpoint.
func isMounted(dir string) bool {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

// wantNoSecrets fails t if text holds the API token or any secret key or
// session token the stack has minted.
func wantNoSecrets(t *testing.T, what, text, token string) {
	t.Helper()
	if strings.Contains(text, token) {
		t.Errorf("the workspace's API token appears in %s", what)
	}
	for _, s := range env.stack.MintedSecrets() {
		if strings.Contains(text, s) {
			t.Errorf("a minted secret key or session token (…%s) appears in %s", s[len(s)-4:], what)
		}
	}
}

// readLog returns what mount-ws has logged so far.
func (m *mount) readLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(m.logPath)
	if err != nil {
		t.Fatalf("read the mount-ws log: %v", err)
	}
	return string(b)
}

// statusReport is the part of `mount-ws status --json` the tests read.
type statusReport struct {
	Problems    []string `json:"problems"`
	StagedBytes int64    `json:"staged_bytes"`
	Forgotten   uint64   `json:"inodes_forgotten"`
	Totals      struct {
		S3Requests     uint64 `json:"S3Requests"`
		S3ReadBytes    int64  `json:"S3ReadBytes"`
		S3WrittenBytes int64  `json:"S3WrittenBytes"`
	} `json:"totals"`
}

// status asks the running mount-ws for its report.
func (m *mount) status(t *testing.T) statusReport {
	t.Helper()
	out, err := exec.Command(env.bin, "status", "--json", m.dir).Output()
	var r statusReport
	if jerr := json.Unmarshal(out, &r); jerr != nil {
		t.Fatalf("mount-ws status --json %s: %v (%v)\n%s", m.dir, jerr, err, out)
	}
	return r
}
