package csidriver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
)

// DriverName is the CSI driver name (GetPluginInfo, the CSIDriver object).
const DriverName = "mount-ws.csi.workspace"

// Config is what a Driver needs; cmd/mount-ws-csi fills it from flags.
type Config struct {
	NodeID        string
	Version       string // vendor version: mount-ws's build version
	MountWS       string // path of the mount-ws binary
	StateDir      string // per-volume cache dirs and logs; survives restarts
	TokenDir      string // token files (tmpfs in production)
	KubeletDir    string // where targets live
	DefaultAPIURL string // used by volumes without an apiURL attribute
	// UnmountWait bounds how long NodeUnpublishVolume waits for mount-ws
	// to upload unsaved data and exit after the unmount; default 2 min.
	UnmountWait time.Duration
	Logger      *slog.Logger
}

// Driver serves the CSI Identity and Node services. Its methods are safe
// for concurrent use; calls for one target path are serialized by a lock
// that a second caller does not wait for (it gets Aborted, and kubelet
// retries).
type Driver struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedNodeServer

	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	busy map[string]bool // target paths with an operation in progress; guarded by mu
}

// New checks cfg and makes the state and token directories.
func New(cfg Config) (*Driver, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("no node id")
	}
	if cfg.MountWS == "" {
		return nil, errors.New("no mount-ws binary")
	}
	for _, d := range []string{cfg.StateDir, cfg.TokenDir} {
		if !filepath.IsAbs(d) {
			return nil, fmt.Errorf("state and token directories must be absolute paths, got %q", d)
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if cfg.UnmountWait <= 0 {
		cfg.UnmountWait = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Driver{cfg: cfg, log: cfg.Logger, busy: map[string]bool{}}, nil
}

// Register adds the Identity and Node services to s.
func (d *Driver) Register(s *grpc.Server) {
	csi.RegisterIdentityServer(s, d)
	csi.RegisterNodeServer(s, d)
}

// Serve listens on endpoint (unix:///path or a path), replacing a stale
// socket, and serves until ctx is done. It first looks for mounts left
// by an earlier driver (see CheckExistingMounts).
func (d *Driver) Serve(ctx context.Context, endpoint string) error {
	path, err := socketPath(endpoint)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	// Before listening: once the socket exists, kubelet may call.
	d.CheckExistingMounts()
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	s := grpc.NewServer(grpc.UnaryInterceptor(d.logCalls))
	d.Register(s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		s.GracefulStop()
	}()
	d.log.Info("serving", "driver", DriverName, "version", d.cfg.Version, "endpoint", path, "node", d.cfg.NodeID)
	err = s.Serve(l)
	<-done
	if errors.Is(err, grpc.ErrServerStopped) && ctx.Err() != nil {
		return nil // stopped before it began serving
	}
	return err
}

// socketPath turns unix:///csi/csi.sock (or /csi/csi.sock) into a path.
func socketPath(endpoint string) (string, error) {
	if strings.HasPrefix(endpoint, "/") {
		return endpoint, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "unix" || u.Path == "" {
		return "", fmt.Errorf("endpoint %q: want unix:///path/to/csi.sock", endpoint)
	}
	return u.Path, nil
}

// logCalls logs every request with its secrets stripped, and its outcome.
func (d *Driver) logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	level := slog.LevelInfo
	if strings.HasSuffix(info.FullMethod, "/Probe") || strings.HasSuffix(info.FullMethod, "Capabilities") || strings.HasSuffix(info.FullMethod, "Info") {
		level = slog.LevelDebug // frequent and uninteresting
	}
	d.log.Log(ctx, level, "call", "method", info.FullMethod, "request", protosanitizer.StripSecrets(req).String())
	resp, err := handler(ctx, req)
	if err != nil {
		d.log.Warn("call failed", "method", info.FullMethod, "err", err, "took", time.Since(start).Round(time.Millisecond))
	} else {
		d.log.Log(ctx, level, "call done", "method", info.FullMethod, "took", time.Since(start).Round(time.Millisecond))
	}
	return resp, err
}

// lockTarget marks target busy, or reports false if it already was.
func (d *Driver) lockTarget(target string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.busy[target] {
		return false
	}
	d.busy[target] = true
	return true
}

func (d *Driver) unlockTarget(target string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.busy, target)
}
