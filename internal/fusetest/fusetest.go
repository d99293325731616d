// Package fusetest mounts filesystems in tests: on a fresh directory,
// unmounted at cleanup, skipped with a reason where FUSE is not available,
// and failed instead of skipped under CI, where FUSE must work.
package fusetest

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"mount-ws/fs"
)

// Require skips t (fails it when CI is set) unless this process can mount:
// /dev/fuse must exist, and a non-root user needs fusermount3.
func Require(t testing.TB) {
	t.Helper()
	why := ""
	if _, err := os.Stat("/dev/fuse"); err != nil {
		why = "no /dev/fuse on this machine (FUSE kernel module or device missing)"
	} else if os.Getuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			why = "not root and no fusermount3 (apt-get install fuse3)"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("FUSE test cannot run under CI: %s", why)
	}
	t.Skipf("FUSE test skipped: %s", why)
}

// Mount mounts f on a new temporary directory, returns its path and
// unmounts it when the test ends.
func Mount(t testing.TB, f *fs.FS) string {
	t.Helper()
	return MountWith(t, f, fs.MountConfig{FsName: "mount-ws-test"})
}

// MountWith is Mount with a configuration of the caller's.
func MountWith(t testing.TB, f *fs.FS, cfg fs.MountConfig) string {
	t.Helper()
	dir, _ := MountServer(t, f, cfg)
	return dir
}

// MountServer is MountWith that also returns the mount's server, for what
// the kernel agreed to (KernelSettings).
func MountServer(t testing.TB, f *fs.FS, cfg fs.MountConfig) (string, *fuse.Server) {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	server, err := fs.Mount(dir, f, cfg)
	if err != nil {
		t.Fatalf("mount %s: %v", dir, err)
	}
	t.Cleanup(func() { Unmount(t, server) })
	return dir, server
}

// Unmount unmounts, retrying briefly while the mount is busy.
func Unmount(t testing.TB, server *fuse.Server) {
	t.Helper()
	var err error
	for range 50 {
		if err = server.Unmount(); err == nil {
			server.Wait()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("unmount: %v", err)
}
