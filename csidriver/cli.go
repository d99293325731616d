package csidriver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
)

// UsageError marks a bad command line (exit code 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// errHelp: the usage was printed on request.
var errHelp = errors.New("help requested")

const usageText = `Usage: mount-ws-csi [flags]            serve the CSI node plugin
       mount-ws-csi publish --volume ORG/WS --target DIR --token-file F [--attr k=v ...] [--read-only]
       mount-ws-csi unpublish --volume ORG/WS --target DIR

The CSI node plugin of mount-ws (driver %s):
NodePublishVolume runs mount-ws at the target path. publish and unpublish
call a running plugin over its socket, as kubelet does, for trying it by
hand.

`

// Run is mount-ws-csi's main: it serves until ctx is done, or runs a
// client subcommand. version is mount-ws's build version.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, version string) error {
	var err error
	switch {
	case len(args) > 0 && args[0] == "publish":
		err = runPublish(ctx, args[1:], stdout)
	case len(args) > 0 && args[0] == "unpublish":
		err = runUnpublish(ctx, args[1:], stdout)
	default:
		err = runServe(ctx, args, stdout, stderr, version)
	}
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer, version string) error {
	host, _ := os.Hostname()
	cfg := Config{Version: version}
	fl := newFlagSet("mount-ws-csi")
	endpoint := fl.String("endpoint", "unix:///csi/csi.sock", "the CSI socket to serve")
	fl.StringVar(&cfg.NodeID, "node-id", host, "this node's id (NodeGetInfo)")
	fl.StringVar(&cfg.MountWS, "mount-ws", "", "the mount-ws binary (default: next to mount-ws-csi, else from $PATH)")
	fl.StringVar(&cfg.StateDir, "state-dir", "/var/lib/mount-ws-csi", "per-volume cache dirs and logs; survives restarts")
	fl.StringVar(&cfg.TokenDir, "token-dir", "/run/mount-ws-csi", "token files (0600); must be tmpfs in production")
	fl.StringVar(&cfg.KubeletDir, "kubelet-dir", "/var/lib/kubelet", "where kubelet's target paths live (to find earlier mounts at start)")
	fl.StringVar(&cfg.DefaultAPIURL, "default-api-url", "", "workspace API URL for volumes without an apiURL attribute")
	logFormat := fl.String("log-format", "text", "text or json")
	logLevel := fl.String("log-level", "info", "debug, info, warn or error")
	help := fl.BoolP("help", "h", false, "show this help")
	showVersion := fl.Bool("version", false, "print the version and exit")
	if err := fl.Parse(args); err != nil {
		return UsageError{err}
	}
	switch {
	case *help:
		fmt.Fprintf(stdout, usageText, DriverName)
		fmt.Fprint(stdout, "Flags:\n", fl.FlagUsages())
		return errHelp
	case *showVersion:
		fmt.Fprintln(stdout, "mount-ws-csi", version)
		return nil
	case fl.NArg() > 0:
		return UsageError{fmt.Errorf("unexpected argument %q (subcommands: publish, unpublish)", fl.Arg(0))}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return UsageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", *logLevel)}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch *logFormat {
	case "text":
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, opts))
	case "json":
		cfg.Logger = slog.New(slog.NewJSONHandler(stderr, opts))
	default:
		return UsageError{fmt.Errorf("--log-format %q: use text or json", *logFormat)}
	}
	if cfg.MountWS == "" {
		cfg.MountWS = findMountWSBinary()
	}
	d, err := New(cfg)
	if err != nil {
		return err
	}
	return d.Serve(ctx, *endpoint)
}

// findMountWSBinary is mount-ws next to this executable, else on $PATH,
// else the bare name (so the failure names it).
func findMountWSBinary() string {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "mount-ws")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("mount-ws"); err == nil {
		return p
	}
	return "mount-ws"
}

func newFlagSet(name string) *pflag.FlagSet {
	fl := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fl.SetOutput(io.Discard)
	fl.SortFlags = false
	return fl
}

// parseAttrs turns repeated --attr k=v into volume attributes.
func parseAttrs(list []string) (map[string]string, error) {
	attrs := map[string]string{}
	for _, a := range list {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, UsageError{fmt.Errorf("--attr %q: want key=value", a)}
		}
		attrs[k] = v
	}
	return attrs, nil
}
