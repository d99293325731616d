package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mount-ws/internal/wsstack"
)

// run runs ws-dev with args (without the program name). Help that was asked
// for is printed on stdout and is no error; usage errors print help on
// stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := runCommand(ctx, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var o serveOptions
	fl := serveFlags(&o)
	switch cmd {
	case "", "serve":
		if err := parseFlags(fl, args, usage, stdout, stderr); err != nil {
			return err
		}
		if fl.NArg() == 0 || (cmd == "" && fl.NArg() == 1 && fl.Arg(0) == "serve") {
			return serve(ctx, o, stdout)
		}
		if cmd == "" {
			return runAfterFlags(ctx, fl, o.dataDir, stdout, stderr)
		}
		printHelp(stderr, fl, usage)
		return fmt.Errorf("serve: unexpected argument %q", fl.Arg(0))
	case "fault":
		return fault(ctx, args, stdout, stderr)
	case "stats":
		return stats(ctx, args, stdout, stderr)
	case "help":
		printHelp(stdout, fl, usage)
		return nil
	}
	printHelp(stderr, fl, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// runAfterFlags runs a command named after the flags, as in
// "ws-dev -data DIR stats": -data, the one flag every command has, is
// passed on; serve's other flags make no sense there and are refused.
func runAfterFlags(ctx context.Context, fl *flag.FlagSet, dataDir string, stdout, stderr io.Writer) error {
	cmd := fl.Arg(0)
	if cmd != "fault" && cmd != "stats" && cmd != "help" {
		printHelp(stderr, fl, usage)
		return fmt.Errorf("unexpected argument %q after the flags (commands come first: \"ws-dev stats -data DIR\")", cmd)
	}
	var serveOnly []string
	fl.Visit(func(f *flag.Flag) {
		if f.Name != "data" {
			serveOnly = append(serveOnly, "-"+f.Name)
		}
	})
	if len(serveOnly) > 0 {
		printHelp(stderr, fl, usage)
		return fmt.Errorf("%s does not take serve's flags (%s)", cmd, strings.Join(serveOnly, ", "))
	}
	return run(ctx, append([]string{cmd, "-data", dataDir}, fl.Args()[1:]...), stdout, stderr)
}

// Files ws-dev keeps in its data dir besides the gateway's data.
const (
	tokenFile   = "token"       // the demo token, mode 0600
	envFile     = "env"         // WS_API_URL=... for scripts
	controlFile = "control-url" // where "ws-dev fault" finds the control port
)

// serveOptions are serve's flags.
type serveOptions struct {
	dataDir, s3Addr, apiAddr string
	ttl                      time.Duration
	seed                     bool
	apiFail                  string
	apiLatency               time.Duration
	mountpoint               string // only for the mount command printed
}

func serveFlags(o *serveOptions) *flag.FlagSet {
	fl := flag.NewFlagSet("serve", flag.ContinueOnError)
	fl.StringVar(&o.dataDir, "data", ".ws-dev", "directory for the S3 server's data and ws-dev's files")
	fl.StringVar(&o.s3Addr, "s3-addr", "", "loopback address for the S3 endpoint (default: a free port)")
	fl.StringVar(&o.apiAddr, "api-addr", "", "loopback address for the workspace API (default: a free port)")
	fl.DurationVar(&o.ttl, "ttl", 15*time.Minute, "lifetime of the credentials the API mints (at least 1s)")
	fl.BoolVar(&o.seed, "seed", true, "write the demo data into demo/ws (skips what is already there)")
	fl.StringVar(&o.apiFail, "api-fail", "", "start with the next N credential requests failing: STATUS:N, e.g. 503:3")
	fl.DurationVar(&o.apiLatency, "api-latency", 0, "delay every credential answer by this much")
	fl.StringVar(&o.mountpoint, "mountpoint", "", "where the mount command printed at start mounts demo/ws (ws-dev mounts nothing itself; make demo passes ./mnt)")
	return fl
}

// serve runs the local workspace until ctx is done. It refuses a data dir
// that another live ws-dev serves, and on the way out removes only the files
// it wrote itself.
func serve(ctx context.Context, o serveOptions, stdout io.Writer) error {
	if o.ttl < time.Second {
		return fmt.Errorf("-ttl %v: must be at least 1s", o.ttl)
	}
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	mountpoint := o.mountpoint
	if mountpoint != "" {
		// Now: the S3 gateway changes the working directory.
		if mountpoint, err = filepath.Abs(mountpoint); err != nil {
			return err
		}
	}
	lock, err := lockDataDir(dir, o.dataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	token, err := wsstack.LoadOrCreateToken(filepath.Join(dir, tokenFile), "wsdev_")
	if err != nil {
		return err
	}
	demo := wsstack.Workspace{Org: "demo", WS: "ws", Tokens: []string{token}}
	scratch := wsstack.Workspace{Org: "demo", WS: "scratch", Tokens: []string{token}}
	stack, err := wsstack.Start(ctx, wsstack.Config{
		DataDir:    filepath.Join(dir, "s3"),
		S3Addr:     o.s3Addr,
		APIAddr:    o.apiAddr,
		TTL:        o.ttl,
		Workspaces: []wsstack.Workspace{demo, scratch},
	})
	if err != nil {
		return fmt.Errorf("start local workspace: %w", err)
	}
	defer stack.Close()

	if o.apiFail != "" {
		var status, n int
		if _, err := fmt.Sscanf(o.apiFail, "%d:%d", &status, &n); err != nil || n < 1 {
			return fmt.Errorf("-api-fail %q: want STATUS:N, e.g. 503:3", o.apiFail)
		}
		stack.API.FailNext(n, status)
	}
	stack.API.SetLatency(o.apiLatency)

	if o.seed {
		start := time.Now()
		n, err := stack.SeedDemo(ctx, demo)
		if err != nil {
			return fmt.Errorf("seed demo data: %w", err)
		}
		fmt.Fprintf(stdout, "Demo data: %d objects written in %v (%d already there).\n",
			n, time.Since(start).Round(time.Millisecond), len(wsstack.DemoObjects())-n)
	}

	control, err := startControl(stack)
	if err != nil {
		return err
	}
	defer control.Close()
	files := map[string]string{
		envFile: fmt.Sprintf("WS_API_URL=%s\nWS_S3_URL=%s\nWS_TOKEN_FILE=%s\nWS_DEV_PID=%d\n",
			stack.APIURL(), stack.S3URL(), filepath.Join(dir, tokenFile), os.Getpid()),
		controlFile: control.URL + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	defer func() {
		for name, content := range files {
			removeIfOwn(filepath.Join(dir, name), content)
		}
	}()

	writeBanner(stdout, banner{
		apiURL:     stack.APIURL(),
		s3URL:      stack.S3URL(),
		ttl:        o.ttl,
		tokenFile:  filepath.Join(dir, tokenFile),
		envFile:    filepath.Join(dir, envFile),
		mountpoint: mountpoint,
	})

	<-ctx.Done()
	fmt.Fprintln(stdout, "Stopping the local workspace.")
	return nil
}

// removeIfOwn removes the file at path if it still holds content: a file
// that another ws-dev has written since is left alone.
func removeIfOwn(path, content string) {
	if b, err := os.ReadFile(path); err == nil && string(b) == content {
		os.Remove(path)
	}
}

// banner is what serve prints once the local workspace is up.
type banner struct {
	apiURL, s3URL      string
	ttl                time.Duration
	tokenFile, envFile string
	mountpoint         string // "" if not known
}

// writeBanner prints where the workspace is and how to mount it. It never
// prints the token, only the file that holds it: terminals and logs are
// copied around.
func writeBanner(w io.Writer, b banner) {
	mnt, note := b.mountpoint, ""
	if mnt == "" {
		mnt, note = "MOUNTPOINT", " (MOUNTPOINT is a placeholder: an empty directory of yours; -mountpoint fills it in)"
	}
	fmt.Fprintf(w, `Local workspace is up.
  Workspace API:  %s   (credentials last %v)
  S3 endpoint:    %s
  Workspaces:     demo/ws (demo data), demo/scratch (empty); bucket %q
  Token file:     %s   (mode 0600: pass the file with --token-file, not the token)
  For scripts:    %s   (WS_API_URL, WS_S3_URL, WS_TOKEN_FILE)

Mount demo/ws with%s:
  mount-ws --api-url %s --token-file %s demo/ws %s

Inject faults with "ws-dev fault -h"; stop with Ctrl-C.
`, b.apiURL, b.ttl, b.s3URL, wsstack.DefaultBucket, b.tokenFile, b.envFile,
		note, b.apiURL, b.tokenFile, mnt)
}
