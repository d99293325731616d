package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"mount-ws/internal/wsstack"
	"mount-ws/mounttab"
)

// tool is a FUSE filesystem under test. Every tool runs in the foreground as
// a child process, so its RSS can be sampled and it can be stopped.
type tool struct {
	Name    string
	Version string
	// Command is the mount command as the doc shows it, with secrets as
	// environment variable names.
	Command string
	// Env is what the command gets on top of a cleaned environment.
	Env []string
	// args builds the command line that mounts at mnt.
	args func(mnt string, m mountMode) []string
}

// mountMode is how a row wants the tool mounted.
type mountMode struct {
	readOnly bool
	// dataCache, when set, is a directory for the tool's cache of file
	// data on local disk (mount-ws --data-cache-dir, s3fs use_cache,
	// rclone --vfs-cache-mode full).
	dataCache string
	// mountWSArgs are more mount-ws flags; the other tools keep their
	// defaults.
	mountWSArgs []string
}

// toolConfig is what the tools need to reach the workspace.
type toolConfig struct {
	mountWS     string   // path of the mount-ws binary
	name        string   // the column's name, if not the tool's
	extraArgs   []string // more mount-ws flags
	apiURL      string
	tokenFile   string
	slug        string // org/ws
	prefetchMiB int
	creds       wsstack.CredentialsResponse
	s3fsURL     string // the endpoint s3fs talks to (see s3fsShim)
}

func mountWSTool(c toolConfig) tool {
	args := func(mnt string, m mountMode) []string {
		a := []string{c.mountWS, "--foreground", "--api-url", c.apiURL, "--token-file", c.tokenFile,
			"--prefetch-memory-mib", strconv.Itoa(c.prefetchMiB)}
		if m.readOnly {
			a = append(a, "--read-only")
		}
		if m.dataCache != "" {
			a = append(a, "--data-cache-dir", m.dataCache)
		}
		a = append(a, c.extraArgs...)
		a = append(a, m.mountWSArgs...)
		return append(a, c.slug, mnt)
	}
	name := "mount-ws"
	if c.name != "" {
		name = c.name
	}
	return tool{
		Name:    name,
		Version: commandVersion(c.mountWS, "--version"),
		Command: strings.Join(args("MNT", mountMode{readOnly: true}), " "),
		args:    args,
	}
}

// s3fs 1.90 reads the session token from AWSSESSIONTOKEN with
// use_session_token.
func s3fsTool(path string, c toolConfig) tool {
	src := c.creds.Bucket + ":/" + strings.TrimSuffix(c.creds.Prefix, "/")
	args := func(mnt string, m mountMode) []string {
		opts := []string{"url=" + c.s3fsURL, "use_path_request_style", "endpoint=" + c.creds.Region,
			"use_session_token", "parallel_count=8", "enable_noobj_cache"}
		if m.readOnly {
			opts = append(opts, "ro")
		}
		if m.dataCache != "" {
			opts = append(opts, "use_cache="+m.dataCache)
		}
		return []string{path, src, mnt, "-f", "-o", strings.Join(opts, ",")}
	}
	return tool{
		Name:    "s3fs",
		Version: commandVersion(path, "--version"),
		Command: "AWSACCESSKEYID=… AWSSECRETACCESSKEY=… AWSSESSIONTOKEN=… " + strings.Join(args("MNT", mountMode{readOnly: true}), " "),
		Env: []string{
			"AWSACCESSKEYID=" + c.creds.AccessKeyID,
			"AWSSECRETACCESSKEY=" + c.creds.SecretAccessKey,
			"AWSSESSIONTOKEN=" + c.creds.SessionToken,
		},
		args: args,
	}
}

func rcloneTool(path string, c toolConfig) tool {
	src := ":s3:" + c.creds.Bucket + "/" + strings.TrimSuffix(c.creds.Prefix, "/")
	args := func(mnt string, m mountMode) []string {
		a := []string{path, "mount", src, mnt,
			"--s3-provider", "Other", "--s3-endpoint", c.creds.Endpoint, "--s3-region", c.creds.Region,
			"--s3-force-path-style=true", "--s3-no-check-bucket", "--use-server-modtime"}
		if m.dataCache != "" {
			a = append(a, "--vfs-cache-mode", "full", "--cache-dir", m.dataCache)
		} else {
			a = append(a, "--vfs-cache-mode", "off")
		}
		if m.readOnly {
			a = append(a, "--read-only")
		}
		return a
	}
	return tool{
		Name:    "rclone",
		Version: commandVersion(path, "version"),
		Command: "RCLONE_S3_ACCESS_KEY_ID=… RCLONE_S3_SECRET_ACCESS_KEY=… RCLONE_S3_SESSION_TOKEN=… " + strings.Join(args("MNT", mountMode{readOnly: true}), " "),
		Env: []string{
			"RCLONE_S3_ACCESS_KEY_ID=" + c.creds.AccessKeyID,
			"RCLONE_S3_SECRET_ACCESS_KEY=" + c.creds.SecretAccessKey,
			"RCLONE_S3_SESSION_TOKEN=" + c.creds.SessionToken,
		},
		args: args,
	}
}

// commandVersion is the first line a command prints for its version flag.
func commandVersion(path string, arg string) string {
	out, _ := exec.Command(path, arg).CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// cleanEnv is the environment of child processes: ours without AWS, rclone
// and workspace settings, so only the credentials we hand each tool count
// (an inherited AWS_CA_BUNDLE, for one, makes rclone 1.60 fail on http).
func cleanEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "AWS") || strings.HasPrefix(k, "RCLONE_") || strings.HasPrefix(k, "WS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// s3fsShim serves the S3 endpoint to s3fs. s3fs 1.90 checks the bucket at
// mount time with a listing of the whole bucket (GET /BUCKET/ without a
// prefix), which prefix-scoped workspace credentials may not do, and it
// cannot skip the check. The shim answers that one request with an empty
// listing and hands every other request, in-process and unchanged, to the
// stack's counting proxy, so s3fs works with the same workspace credentials
// and the same path as the others.
func s3fsShim(next http.Handler, bucket string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.RawQuery == "" && (r.URL.Path == "/"+bucket || r.URL.Path == "/"+bucket+"/") {
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+
				`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>%s</Name><Prefix></Prefix>`+
				`<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`, bucket)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// mountProc is one running FUSE process and its mount.
type mountProc struct {
	tool    string
	mnt     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // set before exited is closed
	rss     *rssSampler

	stopOnce sync.Once
	stopErr  error
}

// mountTimeout bounds how long a tool may take to mount.
const mountTimeout = 30 * time.Second

// startMount runs t mounting at mnt (an empty directory) and returns once
// the mount is in the mount table, or fails with the end of the tool's log
// if the process exits or the mount does not appear in time. The child gets
// its own process group, so a Ctrl-C in the terminal reaches only ws-bench,
// which then unmounts in order.
func startMount(t tool, mnt, logPath string, m mountMode) (*mountProc, error) {
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return nil, fmt.Errorf("mountpoint: %w", err)
	}
	if mounted(mnt) {
		return nil, fmt.Errorf("%s is already a mount point", mnt)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	defer logf.Close() // the child holds its own copy
	args := t.args(mnt, m)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = cleanEnv(t.Env)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", t.Name, err)
	}
	p := &mountProc{tool: t.Name, mnt: mnt, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	p.rss = sampleRSS(cmd.Process.Pid, p.exited)

	deadline := time.Now().Add(mountTimeout)
	for !mounted(mnt) {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited before mounting (%v): %s", t.Name, p.waitErr, p.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s did not mount within %v: %s", t.Name, mountTimeout, p.logTail())
		}
	}
	return p, nil
}

func (p *mountProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	return tail(b, 800)
}

// stop unmounts and waits for the process to exit. If it does not exit
// within 15 s, its process group is killed and the mount detached, so no
// mount is ever left behind. It is idempotent.
func (p *mountProc) stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.doStop() })
	return p.stopErr
}

func (p *mountProc) doStop() error {
	var errs []error
	if mounted(p.mnt) {
		var err error
		for range 50 { // EBUSY while a reader is still closing
			if err = syscall.Unmount(p.mnt, 0); err == nil || !errors.Is(err, syscall.EBUSY) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p.mnt, err))
		}
	}
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		errs = append(errs, fmt.Errorf("%s did not exit after unmount; killed", p.tool))
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
	if mounted(p.mnt) {
		if err := syscall.Unmount(p.mnt, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", p.mnt, err))
		}
	}
	if p.waitErr != nil && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s exited with %v: %s", p.tool, p.waitErr, p.logTail()))
	}
	return errors.Join(errs...)
}

// kill ends the process at once and detaches its mount: for a workload that
// hangs. Readers blocked in the mount then fail with ENOTCONN.
func (p *mountProc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	syscall.Unmount(p.mnt, syscall.MNT_DETACH)
}

// mounted reports whether path, spelt as the mount table spells it, is a
// mount point.
func mounted(path string) bool {
	entries, err := mounttab.Read()
	if err != nil {
		return false
	}
	_, ok := mounttab.Top(entries, path)
	return ok
}

// rssSampler records the peak resident set size of one process, sampled
// every 50 ms until the process exits.
type rssSampler struct {
	mu   sync.Mutex
	peak int64 // KiB since the last reset; guarded by mu
}

func sampleRSS(pid int, exited <-chan struct{}) *rssSampler {
	s := &rssSampler{}
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if kib, ok := readVmRSS(path); ok {
				s.mu.Lock()
				s.peak = max(s.peak, kib)
				s.mu.Unlock()
			}
			select {
			case <-exited:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// reset starts a new peak from now.
func (s *rssSampler) reset() {
	s.mu.Lock()
	s.peak = 0
	s.mu.Unlock()
}

// peakKiB is the highest RSS seen since the last reset.
func (s *rssSampler) peakKiB() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

func readVmRSS(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	return parseVmRSS(b)
}

// parseVmRSS finds "VmRSS:   1234 kB" in a /proc/PID/status file.
func parseVmRSS(status []byte) (int64, bool) {
	for line := range strings.SplitSeq(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		return n, err == nil
	}
	return 0, false
}
