package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/aws/smithy-go/middleware"

	"mount-ws/bucket"
	"mount-ws/creds"
	"mount-ws/datacache"
	"mount-ws/fs"
	"mount-ws/metrics"
	"mount-ws/mounttab"
)

// readyFDEnv names the descriptor on which a background child reports that
// the mount is ready (see daemon.go).
const readyFDEnv = "MOUNT_WS_READY_FD"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "status" {
		return runStatus(args[1:], stdout)
	}
	cfg, err := parseFlags(args, os.Getenv, stdout)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if cfg.version {
		fmt.Fprintln(stdout, "mount-ws", buildVersion(), runtime.Version())
		return nil
	}
	org, ws, err := creds.ParseSlug(cfg.slug)
	if err != nil {
		return usageError{err}
	}
	if err := checkMountpoint(cfg.mountpoint, stderr); err != nil {
		return err
	}
	if !cfg.foreground && os.Getenv(readyFDEnv) == "" {
		return startBackground(ctx, cfg, org, ws, args, stdout, stderr)
	}
	return serve(ctx, cfg, org, ws, stderr)
}

// serve mounts and serves until unmounted or signalled.
func serve(ctx context.Context, cfg config, org, ws string, stderr io.Writer) (err error) {
	ready := readyReporter()
	defer func() { ready.fail(err) }()

	logger, closeLog, err := openLog(cfg, org, ws, stderr)
	if err != nil {
		return err
	}
	defer func() { closeLog(err != nil) }()

	tokens, err := creds.ResolveTokenSource(os.Getenv, cfg.tokenFile, logger)
	if err != nil {
		return credentialsError{err}
	}
	provider, err := creds.NewProvider(ctx, creds.Config{
		APIURL:            cfg.apiURL,
		Org:               org,
		Workspace:         ws,
		TokenSource:       tokens,
		AllowInsecureHTTP: cfg.insecureHTTP,
		ExpiredWaitBound:  cfg.credsWait,
		MountRetryBound:   cfg.mountWait,
		Version:           buildVersion(),
		Logger:            logger,
	})
	if err != nil {
		return credentialsError{err}
	}
	defer provider.Close()

	scope := provider.Scope()
	// Metrics are made before the bucket and the filesystem, which report
	// to them; their state is read at each scrape. They are always kept
	// (mount-ws status reads their totals; they cost nothing measurable,
	// see docs/BENCHMARKS.md): --metrics-addr only serves them.
	var (
		fsys  *fs.FS
		absMP = absPath(cfg.mountpoint)
	)
	met := metrics.New(metrics.Info{Workspace: org + "/" + ws, Mountpoint: absMP, Version: buildVersion()},
		metrics.Sources{FS: func() fs.Stats { return fsys.Stats() }, Creds: provider.Stats})
	b, err := bucket.New(bucket.Config{
		Bucket:      scope.Bucket,
		Prefix:      scope.Prefix,
		Endpoint:    scope.Endpoint,
		Region:      scope.Region,
		Credentials: provider,
		APIOptions:  []func(*middleware.Stack) error{provider.AddReactiveRefresh},
		Logger:      logger,
		Observer:    met,
	})
	if err != nil {
		return fmt.Errorf("storage client: %w", err)
	}
	// One listing before mounting: unreachable or refused storage fails
	// here, with the reason, instead of as EIO on the first ls.
	checkCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = b.List(checkCtx, "", "")
	cancel()
	if err != nil {
		return credentialsError{fmt.Errorf("list workspace %s/%s at %s: %w", org, ws, scope, err)}
	}

	ttl := cfg.metadataTTL
	if ttl == 0 {
		ttl = -1 // fs: negative means no caching
	}
	// Read-ahead buffers are freed in bursts; without a limit the Go heap
	// may grow to twice the budget before collecting them. Collecting at
	// 25 % growth instead of 100 % keeps the heap near what is in use
	// (peak RSS with 4 readers and a 512 MiB budget: 712 → 451 MiB) at no
	// measurable cost: the heap is mostly buffers, which the collector
	// does not scan.
	debug.SetMemoryLimit(cfg.prefetchMem + 256<<20)
	debug.SetGCPercent(25)
	cacheDir := cfg.cacheDir
	if cacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		cacheDir = filepath.Join(base, "mount-ws", org+"-"+ws)
	}
	var dataCache *datacache.Cache
	if cfg.dataCache != "" {
		if dataCache, err = datacache.Open(cfg.dataCache, org+"/"+ws, cfg.dataLimit); err != nil {
			return usageError{fmt.Errorf("--data-cache-dir: %w", err)}
		}
	}
	fsys = fs.New(b, fs.Options{
		UID: cfg.uid, GID: cfg.gid,
		FileMode: cfg.fileMode, DirMode: cfg.dirMode,
		MetadataTTL:    ttl,
		ReadOnly:       cfg.readOnly,
		PrefetchMemory: cfg.prefetchMem,
		CacheDir:       cacheDir,
		CacheLimit:     cfg.cacheLimit,
		DataCache:      dataCache,
		RetryInterval:  cfg.retryEvery,
		Logger:         logger,
	})
	if !cfg.readOnly {
		// Uploads a crashed mount-ws left incomplete cost storage until
		// aborted: abort them before anything else.
		if n, err := fsys.Recover(ctx); err != nil {
			logger.Warn("could not abort every upload left by an earlier mount", "aborted", n, "err", err)
		} else if n > 0 {
			logger.Info("aborted incomplete uploads left by an earlier mount", "count", n)
		}
	}
	mcfg := fs.MountConfig{
		FsName:     mounttab.FSNamePrefix + org + "/" + ws,
		AllowOther: cfg.allowOther,
		AllowRoot:  cfg.allowRoot,
		Xattrs:     cfg.xattr,
		Debug:      cfg.debugFuse,
		Observe:    met.FUSEOp,
	}
	if cfg.metricsAddr != "" {
		ms, err := metrics.Serve(cfg.metricsAddr, met)
		if err != nil {
			return usageError{fmt.Errorf("--metrics-addr %s: %w", cfg.metricsAddr, err)}
		}
		defer func() {
			if err := ms.Close(); err != nil {
				logger.Warn("metrics server", "err", err)
			}
		}()
		logger.Info("metrics served", "url", "http://"+ms.Addr()+"/metrics")
	}
	server, err := fs.Mount(cfg.mountpoint, fsys, mcfg)
	if err != nil {
		return mountError{fmt.Errorf("mount %s: %w", cfg.mountpoint, err)}
	}
	logger.Info("mounted", "workspace", org+"/"+ws, "mountpoint", cfg.mountpoint, "scope", scope.String(), "read_only", cfg.readOnly)
	status, err := serveStatus(mountState{
		workspace: org + "/" + ws, mountpoint: absMP, scope: scope.String(), readOnly: cfg.readOnly, started: time.Now(),
		fs: fsys.Stats, creds: provider.Stats, totals: met.Totals,
	})
	if err != nil {
		logger.Warn("mount-ws status will not answer for this mount", "err", err)
	} else {
		defer status.Close()
	}
	// READY=1 only once the mount answers: a stat of its root is a
	// request to this process.
	if _, err := os.Stat(cfg.mountpoint); err != nil {
		logger.Warn("the new mount does not answer", "mountpoint", cfg.mountpoint, "err", err)
	}
	if err := sdNotify("READY=1"); err != nil {
		logger.Warn("could not tell systemd the mount is ready", "err", err)
	}
	ready.ok()

	done := make(chan struct{})
	go func() {
		server.Wait()
		close(done)
	}()
	select {
	case <-done:
		sdNotify("STOPPING=1")
		logger.Info("unmounted", "mountpoint", cfg.mountpoint)
	case <-ctx.Done():
		sdNotify("STOPPING=1")
		logger.Info("signal received, unmounting", "mountpoint", cfg.mountpoint)
		if err := unmount(server, done); err != nil {
			return mountError{err}
		}
	}
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if lost := fsys.Close(closeCtx); lost > 0 {
		return fmt.Errorf("%d file(s) with unsaved data could not be uploaded before exit (see the log)", lost)
	}
	return nil
}

// unmount asks the kernel to unmount, retrying while the mount is busy.
func unmount(server interface{ Unmount() error }, done <-chan struct{}) error {
	var err error
	for range 50 {
		if err = server.Unmount(); err == nil {
			<-done
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("unmount: %w (is a process still using the mount?)", err)
}

// openLog returns the logger: stderr in the foreground, a file otherwise.
func openLog(cfg config, org, ws string, stderr io.Writer) (*slog.Logger, func(failed bool), error) {
	path := logPath(cfg, org, ws)
	w, closeFn := stderr, func(bool) {}
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, nil, fmt.Errorf("log dir: %w", err)
		}
		_, existed := os.Stat(path)
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		w = f
		closeFn = func(failed bool) {
			fi, err := f.Stat()
			f.Close()
			// A failed mount whose log it created and left empty leaves
			// no file behind (the reason went to the terminal).
			if failed && existed != nil && err == nil && fi.Size() == 0 {
				os.Remove(path)
			}
		}
	}
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), closeFn, nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), closeFn, nil
}

// logPath is where the log goes: --log-file, else stderr in the
// foreground (""), else a file per workspace and mountpoint in the user's
// cache directory, so that two mounts never share one.
func logPath(cfg config, org, ws string) string {
	if cfg.logFile != "" || cfg.foreground {
		return cfg.logFile
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	where := strings.Trim(strings.ReplaceAll(absPath(cfg.mountpoint), "/", "-"), "-")
	return filepath.Join(dir, "mount-ws", org+"-"+ws+"@"+where+".log")
}

// absPath is path made absolute, or path itself if that fails.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// credentialsError and mountError select the exit code (see exitCodesText).
type credentialsError struct{ err error }

func (e credentialsError) Error() string { return e.err.Error() }
func (e credentialsError) Unwrap() error { return e.err }

type mountError struct{ err error }

func (e mountError) Error() string { return e.err.Error() }
func (e mountError) Unwrap() error { return e.err }

// exitCode prints err and maps it to the documented exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var (
		u usageError
		c credentialsError
		m mountError
		r reportedError
		s statusError
	)
	if errors.As(err, &s) {
		if s.err != nil {
			fmt.Fprintln(stderr, "mount-ws status:", s.err)
		}
		return s.code
	}
	if !errors.As(err, &r) {
		fmt.Fprintln(stderr, "mount-ws:", err)
	}
	if errors.As(err, &u) {
		fmt.Fprintln(stderr, "see mount-ws --help")
	}
	switch {
	case errors.As(err, &r):
		return r.code
	case errors.As(err, &u):
		return 2
	case errors.As(err, &c):
		return 3
	case errors.As(err, &m):
		return 4
	}
	return 1
}
