package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"golang.org/x/sys/unix"

	"mount-ws/creds"
	"mount-ws/fs"
	"mount-ws/metrics"
	"mount-ws/mounttab"
)

// The status of a mount is served on a unix socket that only the mount's
// owner can reach (the directory is 0700, the socket 0600): it names files
// and errors. `mount-ws status MOUNTPOINT` asks it.

// statusDirs are where status sockets live, most preferred first. The
// mount uses the first it can create; status looks in each, because the
// mount may have run with another environment (fstab at boot has no
// XDG_RUNTIME_DIR and perhaps no HOME).
func statusDirs() []string {
	var dirs []string
	if os.Geteuid() == 0 {
		dirs = append(dirs, "/run/mount-ws")
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		dirs = append(dirs, filepath.Join(d, "mount-ws"))
	}
	if d, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(d, "mount-ws"))
	}
	return append(dirs, filepath.Join(os.TempDir(), fmt.Sprintf("mount-ws-%d", os.Geteuid())))
}

// statusSocketName names the socket of the mount at mountpoint (absolute):
// readable, and short enough for a socket address (108 bytes) whatever
// the path, with a hash so that /a-b and /a/b differ.
func statusSocketName(mountpoint string) string {
	sum := sha256.Sum256([]byte(mountpoint))
	where := strings.Trim(strings.ReplaceAll(mountpoint, "/", "-"), "-")
	if len(where) > 40 {
		where = where[len(where)-40:]
	}
	return where + "." + hex.EncodeToString(sum[:4]) + ".sock"
}

// statusReport is what the status socket answers, and `status --json`
// prints.
type statusReport struct {
	Workspace  string    `json:"workspace"`
	Mountpoint string    `json:"mountpoint"`
	Scope      string    `json:"scope"`
	Version    string    `json:"version"`
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	ReadOnly   bool      `json:"read_only"`
	// Problems says what needs attention; empty when healthy.
	Problems    []string          `json:"problems"`
	Credentials credentialsStatus `json:"credentials"`
	Uploads     uploadsStatus     `json:"uploads"`
	StagedBytes int64             `json:"staged_bytes"`
	StageLimit  int64             `json:"stage_limit_bytes"`
	Prefetch    int64             `json:"prefetch_bytes"`
	PrefetchMax int64             `json:"prefetch_limit_bytes"`
	// The data cache (--data-cache-dir): bytes kept, its size, and blocks
	// read from it or fetched into it; all 0 when it is off.
	DataCache      int64  `json:"data_cache_bytes"`
	DataCacheMax   int64  `json:"data_cache_limit_bytes"`
	DataCacheHits  uint64 `json:"data_cache_hits"`
	DataCacheFills uint64 `json:"data_cache_misses"`
	// Passthrough counts opens read by the kernel from the data cache.
	Passthrough uint64         `json:"passthrough_opens"`
	Forgotten   uint64         `json:"inodes_forgotten"`
	Totals      metrics.Totals `json:"totals"`
	// RecentErrors are the last failed operations, oldest first.
	RecentErrors []errorStatus `json:"recent_errors"`
}

type errorStatus struct {
	Time  time.Time `json:"time"`
	Op    string    `json:"op"`
	Path  string    `json:"path"`
	Errno string    `json:"errno"`
	Error string    `json:"error"`
}

type credentialsStatus struct {
	Expires        time.Time `json:"expires"`
	ExpiresIn      float64   `json:"expires_in_seconds"`
	LastRefresh    time.Time `json:"last_refresh"`
	RefreshFailing bool      `json:"refresh_failing"`
	LastError      string    `json:"last_error,omitempty"`
}

type uploadsStatus struct {
	Pending int          `json:"pending"`
	Failed  int          `json:"failed"`
	Files   []fileStatus `json:"files"`
}

type fileStatus struct {
	Path   string `json:"path"`
	Failed bool   `json:"failed"`
	Error  string `json:"error,omitempty"`
}

// mountState is what a report is made of.
type mountState struct {
	workspace, mountpoint, scope string
	readOnly                     bool
	started                      time.Time
	fs                           func() fs.Stats
	creds                        func() creds.Stats
	totals                       func() metrics.Totals
}

func (m mountState) report() statusReport {
	r := statusReport{
		Workspace: m.workspace, Mountpoint: m.mountpoint, Scope: m.scope, Version: buildVersion(),
		PID: os.Getpid(), Started: m.started, ReadOnly: m.readOnly,
		Problems: []string{}, Totals: m.totals(), RecentErrors: []errorStatus{},
	}
	c := m.creds()
	r.Credentials = credentialsStatus{
		Expires: c.Expiration, ExpiresIn: c.TimeToExpiry.Seconds(),
		LastRefresh: c.LastRefresh, RefreshFailing: c.Failing,
	}
	if c.LastError != nil {
		r.Credentials.LastError = c.LastError.Error()
	}
	switch {
	case c.TimeToExpiry <= 0:
		r.Problems = append(r.Problems, fmt.Sprintf("credentials expired %s ago and could not be refreshed: %v", (-c.TimeToExpiry).Round(time.Second), c.LastError))
	case c.Failing:
		r.Problems = append(r.Problems, fmt.Sprintf("credential refresh failing (credentials valid for %s more): %v", c.TimeToExpiry.Round(time.Second), c.LastError))
	}
	s := m.fs()
	r.StagedBytes, r.StageLimit = s.StagedBytes, s.StageLimit
	r.Prefetch, r.PrefetchMax = s.PrefetchBytes, s.PrefetchLimit
	r.DataCache, r.DataCacheMax = s.DataCacheBytes, s.DataCacheLimit
	r.DataCacheHits, r.DataCacheFills = s.DataCacheHits, s.DataCacheMisses
	r.Passthrough = s.PassthroughOpens
	r.Forgotten = s.Forgotten
	for _, e := range s.RecentErrors {
		r.RecentErrors = append(r.RecentErrors, errorStatus{
			Time: e.Time, Op: e.Op, Path: e.Path, Errno: unix.ErrnoName(e.Errno), Error: fmt.Sprint(e.Err),
		})
	}
	r.Uploads = uploadsStatus{Pending: len(s.Unsaved), Failed: s.FailedUploads(), Files: []fileStatus{}}
	for _, u := range s.Unsaved {
		f := fileStatus{Path: u.Path, Failed: u.Failed}
		if u.Err != nil {
			f.Error = u.Err.Error()
		}
		r.Uploads.Files = append(r.Uploads.Files, f)
		if u.Failed {
			r.Problems = append(r.Problems, fmt.Sprintf("upload of %s failed (retrying): %s", u.Path, f.Error))
		}
	}
	return r
}

// statusServer answers status requests until Close.
type statusServer struct {
	path string
	srv  *http.Server
	done chan struct{}
}

// serveStatus listens on the mount's status socket. A socket left by a
// mount that died is replaced; one that answers belongs to a live mount
// and is an error.
func serveStatus(state mountState) (*statusServer, error) {
	var lastErr error
	for _, dir := range statusDirs() {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			lastErr = err
			continue
		}
		path := filepath.Join(dir, statusSocketName(state.mountpoint))
		if _, err := askStatus(path); err == nil {
			return nil, fmt.Errorf("status socket %s: another mount-ws serves %s", path, state.mountpoint)
		}
		os.Remove(path)
		l, err := net.Listen("unix", path)
		if err != nil {
			lastErr = err
			continue
		}
		if err := os.Chmod(path, 0o600); err != nil {
			l.Close()
			return nil, fmt.Errorf("status socket: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(state.report())
		})
		s := &statusServer{path: path, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, done: make(chan struct{})}
		go func() {
			defer close(s.done)
			s.srv.Serve(l)
		}()
		return s, nil
	}
	return nil, fmt.Errorf("status socket: no usable directory: %w", lastErr)
}

func (s *statusServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
	<-s.done
	os.Remove(s.path)
}

// askStatus asks the socket at path for its report.
func askStatus(path string) (statusReport, error) {
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://mount-ws/status")
	if err != nil {
		return statusReport{}, err
	}
	defer resp.Body.Close()
	var r statusReport
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("status socket answered %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, fmt.Errorf("status socket: %w", err)
	}
	return r, nil
}

// statusUsage is status's --help.
const statusUsage = `Usage: mount-ws status [--json] [MOUNTPOINT]

Says whether the mount-ws at MOUNTPOINT (or each of your mount-ws mounts)
is healthy: its scope, credentials, uploads (a failed one is named, with
the reason), recent errors, requests and bytes, and local space. Only the
user who mounted it (or root) can ask. With --json and no MOUNTPOINT, a
list of reports.

Exit codes:
  0  healthy
  1  a mount needs attention (each problem is listed)
  2  no mount-ws of yours answers at MOUNTPOINT (or has none), or bad arguments
`

// runStatus is `mount-ws status`.
func runStatus(args []string, stdout io.Writer) error {
	fl := pflag.NewFlagSet("mount-ws status", pflag.ContinueOnError)
	fl.SetOutput(io.Discard)
	asJSON := fl.Bool("json", false, "print the report as JSON")
	help := fl.BoolP("help", "h", false, "show this help")
	if err := fl.Parse(args); err != nil {
		return statusError{code: 2, err: fmt.Errorf("%w (see mount-ws status --help)", err)}
	}
	if *help {
		fmt.Fprint(stdout, statusUsage, "\nFlags:\n", fl.FlagUsages())
		return nil
	}
	var mountpoints []string
	switch fl.NArg() {
	case 0:
		entries, err := mounttab.Read()
		if err != nil {
			return statusError{code: 2, err: fmt.Errorf("list mounts: %w", err)}
		}
		if mountpoints = mountWSMounts(entries, os.Geteuid()); len(mountpoints) == 0 {
			return statusError{code: 2, err: errors.New("no mount-ws mounts of yours (name a MOUNTPOINT to ask about another)")}
		}
	case 1:
		mountpoints = []string{absPath(fl.Arg(0))}
	default:
		return statusError{code: 2, err: errors.New("want at most one MOUNTPOINT (see mount-ws status --help)")}
	}
	var reports []statusReport
	worst := 0
	for _, mnt := range mountpoints {
		r, err := findStatus(mnt)
		if err != nil {
			if len(mountpoints) == 1 {
				return statusError{code: 2, err: err}
			}
			fmt.Fprintf(stdout, "%s: %v\n\n", mnt, err)
			worst = 2
			continue
		}
		reports = append(reports, r)
		if len(r.Problems) > 0 {
			worst = max(worst, 1)
		}
	}
	switch {
	case *asJSON && fl.NArg() == 1:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(reports[0])
	case *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(reports)
	default:
		for i, r := range reports {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			printStatus(stdout, r, time.Now())
		}
	}
	if worst > 0 {
		return statusError{code: worst}
	}
	return nil
}

// mountWSMounts lists the mount points of the mount-ws mounts uid made:
// the ones `mount-ws status` without a MOUNTPOINT reports on.
func mountWSMounts(entries []mounttab.Entry, uid int) []string {
	var mps []string
	for _, m := range entries {
		if m.IsMountWS() && m.OwnedBy(uid) {
			mps = append(mps, m.MountPoint)
		}
	}
	return mps
}

// findStatus asks the mount-ws at mnt (absolute) for its report.
func findStatus(mnt string) (statusReport, error) {
	err := errors.New("no status socket")
	for _, dir := range statusDirs() {
		path := filepath.Join(dir, statusSocketName(mnt))
		if _, serr := os.Stat(path); serr != nil {
			continue
		}
		r, aerr := askStatus(path)
		if aerr == nil {
			return r, nil
		}
		err = aerr
	}
	return statusReport{}, fmt.Errorf("no mount-ws of yours answers at %s (%v): is it mounted? (see findmnt %s)", mnt, err, mnt)
}

// printStatus writes the report for people.
func printStatus(w io.Writer, r statusReport, now time.Time) {
	state := "healthy"
	if n := len(r.Problems); n == 1 {
		state = "1 problem"
	} else if n > 1 {
		state = fmt.Sprintf("%d problems", n)
	}
	fmt.Fprintf(w, "%s on %s: %s\n", r.Workspace, r.Mountpoint, state)
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  ! %s\n", p)
	}
	mode := "read-write"
	if r.ReadOnly {
		mode = "read-only"
	}
	fmt.Fprintf(w, "process:     mount-ws %s, pid %d, up %s, %s\n", r.Version, r.PID, now.Sub(r.Started).Round(time.Second), mode)
	c := r.Credentials
	in := time.Duration(c.ExpiresIn * float64(time.Second)).Round(time.Second)
	refresh := "refreshing normally"
	if c.RefreshFailing {
		refresh = "refresh failing: " + c.LastError
	}
	if in > 0 {
		fmt.Fprintf(w, "credentials: valid for %s (until %s), %s\n", in, c.Expires.Local().Format(time.TimeOnly), refresh)
	} else {
		fmt.Fprintf(w, "credentials: expired %s ago, %s\n", -in, refresh)
	}
	fmt.Fprintf(w, "uploads:     %d pending, %d failed\n", r.Uploads.Pending, r.Uploads.Failed)
	for _, f := range r.Uploads.Files {
		if f.Failed {
			fmt.Fprintf(w, "  failed:    %s: %s\n", f.Path, f.Error)
		} else {
			fmt.Fprintf(w, "  saving:    %s\n", f.Path)
		}
	}
	fmt.Fprintf(w, "staging:     %s of %s\n", mib(r.StagedBytes), mib(r.StageLimit))
	fmt.Fprintf(w, "read-ahead:  %s of %s\n", mib(r.Prefetch), mib(r.PrefetchMax))
	if r.DataCacheMax > 0 {
		fmt.Fprintf(w, "data cache:  %s of %s, %d blocks read from it, %d fetched into it, %d opens passed through\n",
			mib(r.DataCache), mib(r.DataCacheMax), r.DataCacheHits, r.DataCacheFills, r.Passthrough)
	}
	t := r.Totals
	fmt.Fprintf(w, "storage:     %s, %d requests (%d not ok), %s read, %s written\n",
		r.Scope, t.S3Requests, t.S3Failed, mib(t.S3ReadBytes), mib(t.S3WrittenBytes))
	fmt.Fprintf(w, "file ops:    %d answered, %d failed\n", t.FUSEOps, t.FUSEErrors)
	if n := len(r.RecentErrors); n > 0 {
		fmt.Fprintf(w, "recent errors (last %d):\n", n)
		for _, e := range r.RecentErrors {
			fmt.Fprintf(w, "  %s  %s %s: %s: %s\n", e.Time.Local().Format(time.TimeOnly), e.Op, e.Path, e.Errno, e.Error)
		}
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// statusError carries status's exit code; err, if set, is printed.
type statusError struct {
	code int
	err  error
}

func (e statusError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
