package wsstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/embedgw"
)

// gateway is the embedded versitygw S3 server with the posix backend.
type gateway struct {
	addr   string // host:port it listens on
	cancel context.CancelFunc
	done   chan error // receives RunVersityGW's result once
}

// startGateway runs the gateway on addr ("" picks a free loopback port), with
// objects under dataDir/objects and their metadata in dataDir/meta. Metadata
// lives in a sidecar directory, not extended attributes, because ext4 caps an
// inode's xattrs at about 4 KB and a bucket policy for several workspaces
// grows past that.
func startGateway(dataDir, addr, region string, iam *sessionIAM) (*gateway, error) {
	if !filepath.IsAbs(dataDir) {
		return nil, fmt.Errorf("gateway data dir %q must be absolute (the posix backend changes the working directory)", dataDir)
	}
	objects := filepath.Join(dataDir, "objects")
	sidecar := filepath.Join(dataDir, "meta")
	for _, d := range []string{objects, sidecar} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create gateway dir: %w", err)
		}
	}
	if addr == "" {
		var err error
		if addr, err = freeLoopbackAddr(); err != nil {
			return nil, err
		}
	}
	store, err := meta.NewSideCar(sidecar)
	if err != nil {
		return nil, fmt.Errorf("gateway metadata store: %w", err)
	}
	be, err := posix.New(objects, store, posix.PosixOpts{
		SideCarDir: sidecar,
		// Zero would refuse every CopyObject; 5 GiB is S3's own limit.
		CopyObjectThreshold: 5 << 30,
	})
	if err != nil {
		return nil, fmt.Errorf("gateway posix backend: %w", err)
	}
	cfg := &embedgw.Config{
		RootUserAccess:    iam.root.Access,
		RootUserSecret:    iam.root.Secret,
		Region:            region,
		Ports:             []string{addr},
		MaxConnections:    1024,
		MaxRequests:       512,
		MultipartMaxParts: 10000,
		IAMService:        iam,
		Quiet:             true,
		KeepAlive:         true,
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{addr: addr, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := embedgw.RunVersityGW(ctx, be, cfg)
		be.Shutdown()
		g.done <- err
	}()
	if err := g.waitListening(10 * time.Second); err != nil {
		cancel()
		return nil, err
	}
	return g, nil
}

// waitListening polls until the gateway accepts connections: embedgw does
// not report when its listener is up.
func (g *gateway) waitListening(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case err := <-g.done:
			return fmt.Errorf("gateway stopped while starting: %w", err)
		default:
		}
		c, err := net.DialTimeout("tcp", g.addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway did not listen on %s within %v: %w", g.addr, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// close stops the gateway and waits for it to shut down.
func (g *gateway) close() error {
	g.cancel()
	select {
	case err := <-g.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("gateway: %w", err)
		}
		return nil
	case <-time.After(15 * time.Second):
		return errors.New("gateway did not stop within 15s")
	}
}

// freeLoopbackAddr asks the kernel for a free loopback port. Another process
// could take it before the gateway binds it; on loopback that race is rare
// and the start fails loudly if it happens.
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
