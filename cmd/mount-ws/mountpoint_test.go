package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mount-ws/internal/fusetest"
	"mount-ws/internal/syncbuf"
	"mount-ws/mounttab"
)

// otherFUSEEnv makes the test binary serve an empty FUSE filesystem that
// is not mount-ws at the directory it names (see TestMain).
const otherFUSEEnv = "MOUNT_WS_TEST_OTHER_FUSE"

// serveOtherFUSE mounts an empty filesystem of type fuse.other at dir,
// says READY=1 as mount-ws does, and serves until unmounted or killed.
func serveOtherFUSE(dir string) {
	server, err := fusefs.Mount(dir, &fusefs.Inode{}, &fusefs.Options{MountOptions: fuse.MountOptions{
		Name: "other", FsName: "other-test", DirectMountStrict: os.Getuid() == 0,
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mount other FUSE:", err)
		os.Exit(1)
	}
	if err := sdNotify("READY=1"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server.Wait()
	os.Exit(0)
}

// startKilled starts the test binary with env and args, which mounts at
// mnt, and kills it with SIGKILL once it says READY=1 on $NOTIFY_SOCKET:
// only then is it done with requests to its own mount. (Killed in one, as
// in go-fuse's start-up check, its exit closes a file on the mount, which
// waits for an answer from itself: it never exits, and its mount hangs
// instead of dying.) It returns once the mount left behind answers
// ENOTCONN, and detaches whatever is left at cleanup.
func startKilled(t *testing.T, mnt string, env string, args []string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out syncbuf.Buffer
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), env, "NOTIFY_SOCKET="+sock)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	// waitExit waits for the killed process; if it hangs on its own
	// mount, aborting the connection (umount -f) frees it.
	waitExit := func() bool {
		select {
		case <-exited:
			return true
		case <-time.After(20 * time.Second):
			syscall.Unmount(mnt, syscall.MNT_FORCE|syscall.MNT_DETACH)
			<-exited
			return false
		}
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		waitExit()
		for mounted(mnt) {
			if err := syscall.Unmount(mnt, syscall.MNT_FORCE|syscall.MNT_DETACH); err != nil {
				t.Errorf("clean up %s: %v", mnt, err)
				return
			}
		}
	})

	conn.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("the first mount did not say READY=1: %q, %v\n%s", buf[:n], err, out.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !waitExit() {
		t.Fatal("the killed process did not exit until its mount was aborted")
	}
	// Its /dev/fuse descriptor closed as it died, but poll all the same:
	// a listing (never stat, which the kernel may answer from its cache)
	// reaches the dead connection.
	waitFor(t, "the killed mount to answer ENOTCONN", func() bool {
		_, err := os.ReadDir(mnt)
		return errors.Is(err, syscall.ENOTCONN)
	})
	if !mounted(mnt) {
		t.Fatal("the killed mount is gone from /proc/mounts: nothing left to detach")
	}
}

// TestStaleMountpointIsDetached kills a mount-ws with SIGKILL, which
// leaves its mount dead ("Transport endpoint is not connected"), and
// checks that the next mount-ws on that mountpoint detaches it, says so
// in one line, mounts, and leaves nothing behind once unmounted.
func TestStaleMountpointIsDetached(t *testing.T) {
	fusetest.Require(t)
	mnt := t.TempDir()
	args := []string{"-f", "--read-only", "--api-url", stack.APIURL(), "--token-file", tokenFile(t, token), "--cache-dir", t.TempDir(), "cmd/ws", mnt}
	startKilled(t, mnt, "MOUNT_WS_TEST_AS_MAIN=1", args)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var errOut syncbuf.Buffer
	go func() { done <- run(ctx, args, &errOut, &errOut) }()
	waitFor(t, "the second mount to answer", func() bool {
		select {
		case err := <-done:
			t.Fatalf("second mount: %v (%s)", err, errOut.String())
		default:
		}
		got, err := os.ReadFile(filepath.Join(mnt, "csv/iris.csv"))
		return err == nil && strings.HasPrefix(string(got), "sepal_length,")
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("second mount: %v (%s)", err, errOut.String())
	}
	want := "found a dead mount-ws mount at " + mnt
	if n := strings.Count(errOut.String(), want); n != 1 {
		t.Errorf("stderr says %d time(s) %q, want once:\n%s", n, want, errOut.String())
	}
	if mounted(mnt) {
		t.Error("a mount is left at the mountpoint after the second mount's unmount")
	}
}

// TestLiveMountIsNotDetached checks that a mount-ws that answers is left
// alone: a second mount-ws on its mountpoint fails as on any non-empty
// directory.
func TestLiveMountIsNotDetached(t *testing.T) {
	fusetest.Require(t)
	mnt := t.TempDir()
	args := []string{"-f", "--read-only", "--api-url", stack.APIURL(), "--token-file", tokenFile(t, token), "--cache-dir", t.TempDir(), "cmd/ws", mnt}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var firstOut syncbuf.Buffer
	go func() { done <- run(ctx, args, &firstOut, &firstOut) }()
	waitFor(t, "the mount to answer", func() bool {
		select {
		case err := <-done:
			t.Fatalf("first mount: %v (%s)", err, firstOut.String())
		default:
		}
		_, err := os.Stat(filepath.Join(mnt, "csv/iris.csv"))
		return err == nil
	})

	var errOut bytes.Buffer
	err := run(context.Background(), args, &errOut, &errOut)
	if code := exitCode(err, &errOut); code != 4 || !strings.Contains(errOut.String(), "is not empty (is something mounted there already?)") {
		t.Errorf("second mount on a live one: exit %d, stderr %q; want 4 and \"not empty\"", code, errOut.String())
	}
	if strings.Contains(errOut.String(), "dead") {
		t.Errorf("a live mount was taken for a dead one: %q", errOut.String())
	}
	if _, err := os.ReadDir(filepath.Join(mnt, "csv")); err != nil {
		t.Errorf("the first mount no longer answers: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("first mount: %v (%s)", err, firstOut.String())
	}
}

// TestDeadMountOfAnotherFilesystemIsNotDetached checks that a dead FUSE
// mount that mount-ws did not make stays: mount-ws fails, and says what
// is wrong.
func TestDeadMountOfAnotherFilesystemIsNotDetached(t *testing.T) {
	fusetest.Require(t)
	mnt := t.TempDir()
	startKilled(t, mnt, otherFUSEEnv+"="+mnt, nil)

	var errOut bytes.Buffer
	err := run(context.Background(), []string{"-f", "--api-url", stack.APIURL(), "--token-file", tokenFile(t, token), "cmd/ws", mnt}, &errOut, &errOut)
	if code := exitCode(err, &errOut); code != 4 || !strings.Contains(errOut.String(), "transport endpoint is not connected") {
		t.Errorf("mount on a dead fuse.other mount: exit %d, stderr %q; want 4 and ENOTCONN", code, errOut.String())
	}
	entries, err := mounttab.Read()
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := mounttab.Top(entries, mnt); !ok || m.FSType != "fuse.other" {
		t.Errorf("the dead fuse.other mount was detached (top mount now %+v, %v)", m, ok)
	}
}

func TestMountWSMountsOfUser(t *testing.T) {
	info := []byte(`22 1 0:21 / /proc rw - proc proc rw
60 27 0:41 / /mnt/a rw,nosuid - fuse.mount-ws mount-ws:acme/a rw,user_id=0,group_id=0,default_permissions
61 27 0:42 / /mnt/b rw,nosuid - fuse.mount-ws mount-ws:acme/b rw,user_id=1000,group_id=1000
62 27 0:43 / /mnt/other rw,nosuid - fuse.sshfs host:/x rw,user_id=0,group_id=0
63 27 0:44 / /mnt/with\040space rw,nosuid - fuse mount-ws:acme/c rw,user_id=0,group_id=0
`)
	for _, c := range []struct {
		uid  int
		want []string
	}{
		{0, []string{"/mnt/a", "/mnt/with space"}},
		{1000, []string{"/mnt/b"}},
		{1001, nil},
	} {
		if got := mountWSMounts(mounttab.Parse(info), c.uid); !slices.Equal(got, c.want) {
			t.Errorf("mountWSMounts(uid %d) = %q, want %q", c.uid, got, c.want)
		}
	}
}
