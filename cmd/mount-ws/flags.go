package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"mount-ws/creds"
	"mount-ws/fs"
	"mount-ws/metrics"
)

// config is the parsed command line.
type config struct {
	slug, mountpoint string

	apiURL       string
	tokenFile    string
	insecureHTTP bool
	credsWait    time.Duration
	mountWait    time.Duration

	readOnly    bool
	foreground  bool
	allowOther  bool
	allowRoot   bool
	xattr       bool
	uid, gid    uint32
	fileMode    uint32
	dirMode     uint32
	metadataTTL time.Duration
	prefetchMem int64
	cacheDir    string
	dataCache   string // directory of the data cache; "" for none
	dataLimit   int64
	cacheLimit  int64
	retryEvery  time.Duration

	logLevel  slog.Level
	logFormat string // text or json
	logFile   string
	debugFuse bool
	version   bool

	metricsAddr string
}

const usageText = `Usage: mount-ws [flags] ORG/WS MOUNTPOINT
       mount -t fuse.mount-ws ORG/WS MOUNTPOINT -o OPTIONS
       mount-ws status [--json] [MOUNTPOINT]

Mounts the storage of workspace ORG/WS at MOUNTPOINT (an existing, empty
directory). By default mount-ws runs in the background and returns once the
mount is ready; unmount with "umount MOUNTPOINT" (root) or
"fusermount3 -u MOUNTPOINT".

The API token comes from $WS_TOKEN, or from --token-file (default
~/.config/mount-ws/token); it is never taken on the command line.

Every flag can also be given as a mount option: -o ro,allow_other,uid=1000
is --read-only --allow-other --uid 1000 (dashes become underscores). The
options mount(8) passes (rw, dev, suid, exec, _netdev, nofail, x-systemd.*
and the like) are accepted and ignored.
`

const exitCodesText = `
Exit codes:
  0  mounted (or, in the foreground, unmounted cleanly)
  1  an unexpected error
  2  usage: bad flags or arguments
  3  credentials: the workspace API refused the token or the workspace, or
     could not be reached
  4  mount: the mountpoint is unusable, FUSE is missing, or the mount failed
`

// errHelp is returned for --help: the usage went to stdout, exit 0.
var errHelp = errors.New("help requested")

// flagGroups orders the flags in --help.
var flagGroups = []struct {
	title string
	names []string
}{
	{"Workspace", []string{"api-url", "token-file", "insecure-http", "credentials-wait", "mount-wait"}},
	{"Mount", []string{"foreground", "read-only", "allow-other", "allow-root", "uid", "gid", "file-mode", "dir-mode", "xattr", "options"}},
	{"Caching and memory", []string{"metadata-ttl", "prefetch-memory-mib", "cache-dir", "cache-size-mib", "data-cache-dir", "data-cache-size-mib", "upload-retry-interval"}},
	{"Logging and monitoring", []string{"log-level", "log-format", "log-file", "debug-fuse", "metrics-addr"}},
	{"Other", []string{"help", "version"}},
}

// parseFlags reads args; flags may come before or after the two arguments.
func parseFlags(args []string, getenv func(string) string, stdout io.Writer) (config, error) {
	c := config{apiURL: getenv("WS_API_URL"), logLevel: slog.LevelInfo}
	fl := pflag.NewFlagSet("mount-ws", pflag.ContinueOnError)
	fl.SetOutput(io.Discard) // errors are reported once, by the caller
	fl.SortFlags = false
	fl.StringVar(&c.apiURL, "api-url", c.apiURL, "workspace API base URL (env WS_API_URL)")
	fl.StringVar(&c.tokenFile, "token-file", "", "file holding the API token (default: $WS_TOKEN, else ~/.config/mount-ws/token)")
	fl.BoolVar(&c.insecureHTTP, "insecure-http", false, "allow http:// API and S3 URLs on hosts other than loopback")
	fl.DurationVar(&c.credsWait, "credentials-wait", creds.DefaultExpiredWaitBound, "how long an operation waits for fresh credentials, once the held ones expired, before it fails with EIO")
	fl.DurationVar(&c.mountWait, "mount-wait", creds.DefaultMountRetryBound, "how long mount-ws retries an unavailable workspace API (5xx, timeouts, connection errors) at start, before it gives up with exit 3; raise it for mounts at boot")
	fl.BoolVar(&c.readOnly, "read-only", false, "mount read-only: every modification fails with EROFS")
	fl.BoolVarP(&c.foreground, "foreground", "f", false, "stay in the foreground (for systemd and containers)")
	fl.BoolVar(&c.allowOther, "allow-other", false, "let other users in, as the modes allow (needs user_allow_other in /etc/fuse.conf unless root)")
	fl.BoolVar(&c.allowRoot, "allow-root", false, "let root in besides the mount's owner, as the modes allow (same condition)")
	fl.BoolVar(&c.xattr, "xattr", false, "store extended attributes in object metadata, as s3fs's use_xattr (ls -l then costs two more round trips to mount-ws per file)")
	uid := fl.Int("uid", os.Getuid(), "owner of objects that store none")
	gid := fl.Int("gid", os.Getgid(), "group of objects that store none")
	fileMode := fl.String("file-mode", "0644", "permissions of files that store none (octal)")
	dirMode := fl.String("dir-mode", "0755", "permissions of directories that store none (octal)")
	opts := fl.StringArrayP("options", "o", nil, "mount options, comma-separated: any flag as name=value (or name for true), plus ro and rw")
	fl.DurationVar(&c.metadataTTL, "metadata-ttl", fs.DefaultMetadataTTL, "how long listings and attributes are cached; 0 caches nothing")
	prefetch := fl.Int("prefetch-memory-mib", fs.DefaultPrefetchMemory>>20, "memory for read-ahead buffers of all open files, MiB")
	fl.StringVar(&c.cacheDir, "cache-dir", "", "directory for staging files being written and the upload journal (default ~/.cache/mount-ws/ORG-WS)")
	cacheSize := fl.Int64("cache-size-mib", fs.DefaultCacheLimit>>20, "most MiB of file data staged for writing at once; writes past it fail with ENOSPC")
	fl.StringVar(&c.dataCache, "data-cache-dir", "", "keep blocks of the files read on local disk here, so a re-read costs no request (off by default; give it its own directory)")
	dataSize := fl.Int64("data-cache-size-mib", 10<<10, "most MiB the data cache keeps; the least recently used blocks go first")
	fl.DurationVar(&c.retryEvery, "upload-retry-interval", fs.DefaultRetryInterval, "when a file whose upload failed is first uploaded again in the background; each further failure doubles the wait, up to 8 times this")
	logLevel := fl.String("log-level", "info", "debug, info, warn or error")
	fl.StringVar(&c.logFormat, "log-format", "text", "text, or json (one object per line, for log pipelines)")
	fl.StringVar(&c.logFile, "log-file", "", "write logs here (default: stderr in the foreground, ~/.cache/mount-ws/ORG-WS@MOUNTPOINT.log in the background)")
	fl.BoolVar(&c.debugFuse, "debug-fuse", false, "log every FUSE request (very verbose)")
	fl.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus metrics at http://HOST:PORT/metrics (off by default; a PORT alone listens on loopback)")
	help := fl.BoolP("help", "h", false, "show this help and exit")
	fl.BoolVar(&c.version, "version", false, "print the version and exit")

	if err := fl.Parse(args); err != nil {
		return c, usageError{err}
	}
	if *help {
		printUsage(stdout, fl)
		return c, errHelp
	}
	if err := applyOptions(fl, *opts); err != nil {
		return c, err
	}
	if c.version {
		return c, nil
	}
	pos := fl.Args()
	if len(pos) != 2 {
		return c, usageError{fmt.Errorf("want ORG/WS and MOUNTPOINT, got %d argument(s)", len(pos))}
	}
	c.slug, c.mountpoint = pos[0], pos[1]
	var err error
	if c.fileMode, err = parseMode("file-mode", *fileMode); err != nil {
		return c, err
	}
	if c.dirMode, err = parseMode("dir-mode", *dirMode); err != nil {
		return c, err
	}
	if *uid < 0 || *gid < 0 {
		return c, usageError{errors.New("--uid and --gid must not be negative")}
	}
	c.uid, c.gid = uint32(*uid), uint32(*gid)
	if c.metadataTTL < 0 {
		return c, usageError{errors.New("--metadata-ttl must not be negative")}
	}
	if *prefetch < 16 {
		return c, usageError{errors.New("--prefetch-memory-mib must be at least 16")}
	}
	c.prefetchMem = int64(*prefetch) << 20
	if c.credsWait < 100*time.Millisecond {
		return c, usageError{errors.New("--credentials-wait must be at least 100ms")}
	}
	if c.mountWait < 100*time.Millisecond {
		return c, usageError{errors.New("--mount-wait must be at least 100ms")}
	}
	if c.retryEvery < 100*time.Millisecond {
		return c, usageError{errors.New("--upload-retry-interval must be at least 100ms")}
	}
	if *cacheSize < 1 {
		return c, usageError{errors.New("--cache-size-mib must be at least 1")}
	}
	c.cacheLimit = *cacheSize << 20
	if *dataSize < 2 {
		return c, usageError{errors.New("--data-cache-size-mib must be at least 2")}
	}
	c.dataLimit = *dataSize << 20
	if err := c.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return c, usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", *logLevel)}
	}
	if c.metricsAddr != "" {
		if _, err := metrics.ListenAddr(c.metricsAddr); err != nil {
			return c, usageError{fmt.Errorf("--metrics-addr: %w", err)}
		}
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return c, usageError{fmt.Errorf("--log-format %q: use text or json", c.logFormat)}
	}
	if c.apiURL == "" {
		return c, usageError{errors.New("no workspace API URL: pass --api-url or set WS_API_URL")}
	}
	return c, nil
}

// ignoredOptions are what mount(8), mount.fuse3 and systemd pass that
// mean nothing to mount-ws (FUSE mounts are always nosuid and nodev).
var ignoredOptions = map[string]bool{
	"rw": true, "dev": true, "nodev": true, "suid": true, "nosuid": true, "exec": true, "noexec": true,
	"auto": true, "noauto": true, "user": true, "nouser": true, "users": true, "defaults": true,
	"_netdev": true, "nofail": true, "atime": true, "noatime": true, "relatime": true, "async": true,
}

// applyOptions applies -o options: each name=value (or name, for true) is
// the flag of that name with dashes written as underscores; a flag given
// as a flag wins over the same one in -o.
func applyOptions(fl *pflag.FlagSet, opts []string) error {
	for _, list := range opts {
		for _, o := range strings.Split(list, ",") {
			name, value, hasValue := strings.Cut(strings.TrimSpace(o), "=")
			switch {
			case name == "" || ignoredOptions[name] || strings.HasPrefix(name, "x-") || name == "comment":
				continue
			case name == "ro":
				name, value, hasValue = "read-only", "true", true
			}
			flagName := strings.ReplaceAll(name, "_", "-")
			f := fl.Lookup(flagName)
			if f == nil || flagName == "options" || flagName == "help" || flagName == "version" {
				return usageError{fmt.Errorf("unknown mount option %q", name)}
			}
			if f.Changed {
				continue
			}
			if !hasValue {
				if f.Value.Type() != "bool" {
					return usageError{fmt.Errorf("mount option %q needs a value, as in %s=VALUE", name, name)}
				}
				value = "true"
			}
			if err := fl.Set(flagName, value); err != nil {
				return usageError{fmt.Errorf("mount option %s: %w", o, err)}
			}
		}
	}
	return nil
}

// printUsage writes the help text, the flags in groups, and the exit codes.
func printUsage(w io.Writer, fl *pflag.FlagSet) {
	fmt.Fprint(w, usageText)
	for _, g := range flagGroups {
		group := pflag.NewFlagSet(g.title, pflag.ContinueOnError)
		group.SortFlags = false
		for _, name := range g.names {
			group.AddFlag(fl.Lookup(name))
		}
		fmt.Fprintf(w, "\n%s:\n%s", g.title, group.FlagUsages())
	}
	fmt.Fprint(w, exitCodesText)
}

func parseMode(name, s string) (uint32, error) {
	m, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || m > 0o7777 {
		return 0, usageError{fmt.Errorf("--%s %q: want octal permissions like 0644", name, s)}
	}
	return uint32(m), nil
}

// usageError marks errors in the command line (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
