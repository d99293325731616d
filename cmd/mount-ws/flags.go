package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"mount-ws/fs"
)

// config is the parsed command line.
type config struct {
	slug, mountpoint string

	apiURL       string
	tokenFile    string
	insecureHTTP bool

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
	cacheLimit  int64

	logLevel  slog.Level
	logFile   string
	debugFuse bool
	version   bool
}

const usageText = `Usage: mount-ws [flags] ORG/WS MOUNTPOINT

Mounts the storage of workspace ORG/WS at MOUNTPOINT (an existing, empty
directory). By default mount-ws runs in the background and returns once the
mount is ready; unmount with "umount MOUNTPOINT" (root) or
"fusermount3 -u MOUNTPOINT".

The API token comes from $WS_TOKEN, or from --token-file (default
~/.config/mount-ws/token); it is never taken on the command line.

Flags:
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

// parseFlags reads args; flags may come before or after the two arguments.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	c := config{apiURL: getenv("WS_API_URL"), logLevel: slog.LevelInfo}
	fl := flag.NewFlagSet("mount-ws", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fl.PrintDefaults()
		fmt.Fprint(stderr, exitCodesText)
	}
	fl.StringVar(&c.apiURL, "api-url", c.apiURL, "workspace API base URL (env WS_API_URL)")
	fl.StringVar(&c.tokenFile, "token-file", "", "file holding the API token (default: $WS_TOKEN, else ~/.config/mount-ws/token)")
	fl.BoolVar(&c.insecureHTTP, "insecure-http", false, "allow http:// API and S3 URLs on hosts other than loopback")
	fl.BoolVar(&c.readOnly, "read-only", false, "mount read-only: every modification fails with EROFS")
	fl.BoolVar(&c.foreground, "foreground", false, "stay in the foreground (for systemd and containers)")
	fl.BoolVar(&c.foreground, "f", false, "short for --foreground")
	fl.BoolVar(&c.allowOther, "allow-other", false, "let other users access the mount, as the modes allow (needs user_allow_other in /etc/fuse.conf unless root)")
	fl.BoolVar(&c.xattr, "xattr", false, "store extended attributes in object metadata, as s3fs's use_xattr (ls -l then costs two more round trips to mount-ws per file)")
	fl.BoolVar(&c.allowRoot, "allow-root", false, "let root access the mount besides its owner, as the modes allow (needs user_allow_other unless root)")
	uid := fl.Int("uid", os.Getuid(), "owner of every file")
	gid := fl.Int("gid", os.Getgid(), "group of every file")
	fileMode := fl.String("file-mode", "0644", "permissions of files (octal)")
	dirMode := fl.String("dir-mode", "0755", "permissions of directories (octal)")
	fl.DurationVar(&c.metadataTTL, "metadata-ttl", fs.DefaultMetadataTTL, "how long listings and attributes are cached; 0 caches nothing")
	prefetch := fl.Int("prefetch-memory-mib", fs.DefaultPrefetchMemory>>20, "memory for read-ahead buffers of all open files, MiB")
	fl.StringVar(&c.cacheDir, "cache-dir", "", "directory for staging files being written and the upload journal (default ~/.cache/mount-ws/ORG-WS)")
	cacheSize := fl.Int64("cache-size-mib", fs.DefaultCacheLimit>>20, "most MiB of file data staged for writing at once; writes past it fail with ENOSPC")
	logLevel := fl.String("log-level", "info", "debug, info, warn or error")
	fl.StringVar(&c.logFile, "log-file", "", "write logs here (default: stderr in the foreground, ~/.cache/mount-ws/ORG-WS.log in the background)")
	fl.BoolVar(&c.debugFuse, "debug-fuse", false, "log every FUSE request (very verbose)")
	fl.BoolVar(&c.version, "version", false, "print the version and exit")

	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			return c, usageError{err}
		}
		args = fl.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if c.version {
		return c, nil
	}
	if len(pos) != 2 {
		fl.Usage()
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
	if *cacheSize < 1 {
		return c, usageError{errors.New("--cache-size-mib must be at least 1")}
	}
	c.cacheLimit = *cacheSize << 20
	if err := c.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return c, usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", *logLevel)}
	}
	if c.apiURL == "" {
		return c, usageError{errors.New("no workspace API URL: pass --api-url or set WS_API_URL")}
	}
	return c, nil
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
