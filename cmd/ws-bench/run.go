package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"mount-ws/internal/devcmd"
	"mount-ws/internal/wsstack"
)

// options are ws-bench's flags.
type options struct {
	dataDir     string
	keep        bool
	quick       bool
	tools       []string
	workloads   []string
	mountWS     string
	prefetchMiB int
	verify      bool
	rowTimeout  time.Duration
	runs        int
	jsonFile    string
	mdFile      string
	s3Latency   time.Duration
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fl := flag.NewFlagSet("ws-bench", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, `Usage: ws-bench [flags]

Starts a local workspace, seeds it, and measures mount-ws, s3fs and rclone
(those installed) against the AWS SDK reading the same data, with a fresh
mount and a dropped page cache for every measurement. Needs root and
/dev/fuse. See docs/BENCHMARKS.md.

Flags:
`)
		fl.PrintDefaults()
	}
	fl.StringVar(&o.dataDir, "data", "", "data dir for the S3 server, mounts and logs (default: a temporary dir under /tmp, removed after the run unless -keep); a kept dir is seeded only with what is missing")
	fl.BoolVar(&o.keep, "keep", false, "keep the temporary data dir (its path is printed)")
	fl.BoolVar(&o.quick, "quick", false, "small data set (256 MiB, 4×64 MiB, 2,000, 4,000, 500 objects) for a quick check")
	tools := fl.String("tools", "mount-ws,s3fs,rclone", "comma-separated filesystems to measure: mount-ws, mount-ws+metrics (with --metrics-addr set), s3fs, rclone; s3fs and rclone are skipped when not installed")
	workloads := fl.String("workloads", "", "comma-separated workload ids to run (seq, par, rand, rand1m, ls, find, catone, small, write, create, untar, append, notrunc, seq2, small2; and ls200k, ls -l of 200,000 entries (20,000 with -quick), which runs and is seeded only when named); default all but ls200k")
	fl.StringVar(&o.mountWS, "mount-ws", "", "mount-ws binary (default: next to ws-bench, else $PATH)")
	fl.IntVar(&o.prefetchMiB, "prefetch-memory-mib", 512, "mount-ws --prefetch-memory-mib")
	fl.BoolVar(&o.verify, "verify", true, "check every byte read against the seeded content (same cost on every path)")
	fl.DurationVar(&o.rowTimeout, "row-timeout", 3*time.Minute, "limit for one measurement; a slower one is stopped and reported as failed (ls200k allows itself 3 s per 1,000 entries when that is longer)")
	fl.IntVar(&o.runs, "runs", 1, "measure every workload this many times (fresh mount each time) and keep each tool's best run")
	fl.DurationVar(&o.s3Latency, "s3-latency", 0, "delay every S3 request by this long at the proxy, for the SDK and every tool alike (a model of S3 across a network; seeding is not delayed)")
	fl.StringVar(&o.jsonFile, "json", "", "also write the results as JSON to this file")
	fl.StringVar(&o.mdFile, "md", "", "also write the results as markdown tables to this file")
	if err := fl.Parse(args); err != nil {
		return o, err
	}
	if o.runs < 1 {
		return o, fmt.Errorf("-runs %d: must be at least 1", o.runs)
	}
	if fl.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	o.tools = splitList(*tools)
	o.workloads = splitList(*workloads)
	// The S3 server changes the working directory: make paths absolute.
	for _, p := range []*string{&o.dataDir, &o.mountWS, &o.jsonFile, &o.mdFile} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return o, err
			}
			*p = abs
		}
	}
	return o, nil
}

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// The workspace the benchmark mounts.
const (
	benchOrg = "bench"
	benchWS  = "ws"
	credsTTL = 2 * time.Hour // longer than any run
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	began := time.Now()
	opts, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	data := fullDataset()
	if opts.quick {
		data = quickDataset()
	}
	all := bench{data: data, archive: newUntarArchive("")}.workloads()
	for _, id := range opts.workloads {
		if !slices.ContainsFunc(all, func(w workload) bool { return w.ID == id }) {
			return fmt.Errorf("-workloads: unknown workload %q", id)
		}
	}

	dir, cleanupDir, err := devcmd.DataDir(opts.dataDir, "ws-bench-", opts.keep, stderr, mounted)
	if err != nil {
		return err
	}
	defer func() {
		if err := cleanupDir(); err != nil {
			logf("ws-bench: %v", err)
		}
	}()
	for _, sub := range []string{"logs", "mnt"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	token, err := wsstack.LoadOrCreateToken(filepath.Join(dir, "token"), "wsbench_")
	if err != nil {
		return err
	}

	stack, err := wsstack.Start(ctx, wsstack.Config{
		DataDir:    filepath.Join(dir, "s3"),
		TTL:        credsTTL,
		Workspaces: []wsstack.Workspace{{Org: benchOrg, WS: benchWS, Tokens: []string{token}}},
	})
	if err != nil {
		return fmt.Errorf("start local workspace: %w", err)
	}
	defer stack.Close()
	stack.API.SetTTL(credsTTL)

	// Credentials for the SDK, s3fs and rclone: each mints its own, with
	// the workspace token, as a user of that tool would.
	mintOne := func() (wsstack.CredentialsResponse, error) {
		return mint(ctx, stack.APIURL(), benchOrg, benchWS, token)
	}
	sdkCreds, err := mintOne()
	if err != nil {
		return err
	}

	logf("Seeding %s data set in %s ...", data.Name, dir)
	seedStart := time.Now()
	sd := seeder{client: newSeederClient(stack.RootClient()), bucket: sdkCreds.Bucket, prefix: sdkCreds.Prefix}
	objs := seedObjects(data, all, opts.workloads)
	n, err := sd.seed(ctx, objs)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	logf("Seeded %d objects in %v (%d were already there).", n, time.Since(seedStart).Round(time.Millisecond), len(objs)-n)

	// What earlier runs on a kept data dir wrote, and then what this run
	// writes, is removed.
	cleanWrites := func() {
		if n, err := sd.removeWrites(context.WithoutCancel(ctx), data); err != nil {
			logf("ws-bench: %v", err)
		} else if n > 0 {
			logf("Removed %d objects written by the write rows.", n)
		}
	}
	cleanWrites()
	defer cleanWrites()

	tools, notes, stopShim, err := setupTools(opts, stack, dir, mintOne)
	if err != nil {
		return err
	}
	defer stopShim()

	chk := newChecker(opts.verify)
	b := bench{data: data, check: chk, archive: newUntarArchive(dir)}
	if p, err := exec.LookPath("fio"); err == nil {
		b.fio = p
	} else {
		notes = append(notes, "fio is not installed: random reads through the mounts use a Go pread loop")
	}
	if opts.s3Latency > 0 {
		stack.S3.Inject(wsstack.S3Fault{Stall: opts.s3Latency})
		notes = append(notes, fmt.Sprintf("every S3 request was delayed %v at the proxy (-s3-latency), a model of S3 across a network", opts.s3Latency))
	}
	r := runner{
		dir: dir, stack: stack, seeder: sd, rowTimeout: opts.rowTimeout, runs: opts.runs, logf: logf,
		sdk: sdk{client: newSDKClient(sdkCreds), bucket: sdkCreds.Bucket, prefix: sdkCreds.Prefix, check: chk},
	}
	rep := report{
		Date: began, Command: "ws-bench " + strings.Join(args, " "), Machine: machineInfo(),
		Dataset: data.Name, Verified: opts.verify,
	}
	for _, t := range tools {
		rep.Tools = append(rep.Tools, toolInfo{Name: t.Name, Version: t.Version, Command: t.Command})
	}
	for _, w := range b.workloads() {
		if !selected(w, opts.workloads) {
			continue
		}
		row, err := r.measure(ctx, w, tools)
		if err != nil {
			return err
		}
		rep.Rows = append(rep.Rows, row)
	}
	if !r.droppedCaches {
		notes = append(notes, "the page cache could not be dropped (not root?): reads may be warm")
	}
	rep.Notes = notes
	rep.Seconds = time.Since(began).Seconds()
	rep.writeText(stdout)
	fmt.Fprintf(stdout, "\nWhole run: %v.\n", time.Since(began).Round(time.Second))
	return writeOutputs(rep, opts)
}

// seedObjects is what the run reads: the data set, and the objects of the
// selected rows that have their own.
func seedObjects(d dataset, rows []workload, ids []string) []object {
	objs := d.objects()
	for _, w := range rows {
		if w.Objects != nil && selected(w, ids) {
			objs = append(objs, w.Objects()...)
		}
	}
	return objs
}

// setupTools finds the requested filesystems and builds their commands.
// It also starts the endpoint s3fs talks to; stop ends it.
func setupTools(opts options, stack *wsstack.Stack, dir string,
	mintOne func() (wsstack.CredentialsResponse, error)) (tools []tool, notes []string, stop func(), err error) {
	stop = func() {}
	tokenFile := filepath.Join(dir, "token")
	for _, name := range opts.tools {
		switch name {
		case "mount-ws", "mount-ws+metrics":
			bin, err := devcmd.FindMountWS(opts.mountWS)
			if err != nil {
				return nil, nil, stop, err
			}
			c := toolConfig{
				mountWS: bin, apiURL: stack.APIURL(), tokenFile: tokenFile,
				slug: benchOrg + "/" + benchWS, prefetchMiB: opts.prefetchMiB,
			}
			if name == "mount-ws+metrics" {
				// What keeping the metrics costs (nobody scrapes them).
				c.name, c.extraArgs = name, []string{"--metrics-addr", "0"}
			}
			tools = append(tools, mountWSTool(c))
		case "s3fs":
			path, err := exec.LookPath("s3fs")
			if err != nil {
				notes = append(notes, "s3fs is not installed: its column is empty")
				continue
			}
			cr, err := mintOne()
			if err != nil {
				return nil, nil, stop, err
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, nil, stop, fmt.Errorf("s3fs endpoint: %w", err)
			}
			srv := &http.Server{Handler: s3fsShim(stack.S3, cr.Bucket)}
			go srv.Serve(ln) // ends when stop closes srv
			stop = func() { srv.Close() }
			tools = append(tools, s3fsTool(path, toolConfig{creds: cr, s3fsURL: "http://" + ln.Addr().String()}))
		case "rclone":
			path, err := exec.LookPath("rclone")
			if err != nil {
				notes = append(notes, "rclone is not installed: its column is empty")
				continue
			}
			cr, err := mintOne()
			if err != nil {
				return nil, nil, stop, err
			}
			tools = append(tools, rcloneTool(path, toolConfig{creds: cr}))
		default:
			return nil, nil, stop, fmt.Errorf("-tools: unknown filesystem %q (want mount-ws, s3fs, rclone)", name)
		}
	}
	return tools, notes, stop, nil
}

func writeOutputs(rep report, opts options) error {
	if opts.jsonFile != "" {
		var b bytes.Buffer
		if err := rep.writeJSON(&b); err != nil {
			return err
		}
		if err := os.WriteFile(opts.jsonFile, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write -json: %w", err)
		}
	}
	if opts.mdFile != "" {
		var b bytes.Buffer
		rep.writeMarkdown(&b)
		if err := os.WriteFile(opts.mdFile, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write -md: %w", err)
		}
	}
	return nil
}

func machineInfo() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var b []byte
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		m.Kernel = string(b)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(rest)
				if len(f) > 0 {
					kib, _ := strconv.ParseInt(f[0], 10, 64)
					m.MemoryGiB = int((kib + 1<<19) >> 20)
				}
			}
		}
	}
	return m
}
