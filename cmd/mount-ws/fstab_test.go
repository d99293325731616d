package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"mount-ws/internal/fusetest"
	"mount-ws/internal/syncbuf"
	"mount-ws/internal/wsstack"
)

// fstabScript mounts as an fstab line does, in the private mount namespace
// it runs in: $1 is a directory holding this tree's mount-ws, bind-mounted
// over /usr/local/bin (where make install puts it; mount.fuse3 looks there),
// $2 the mountpoint, $3 the options. Once mounted it says so and waits for
// a line (or EOF) on stdin before unmounting with umount(8).
const fstabScript = `set -e
mount --bind "$1" /usr/local/bin
mount -t fuse.mount-ws cmd/ws "$2" -o "$3"
echo mounted
read _ || :
umount "$2"
echo unmounted
`

// TestFstabMount mounts with "mount -t fuse.mount-ws cmd/ws MNT -o ...",
// as /etc/fstab does: mount(8) runs mount.fuse3, which runs
// "mount-ws cmd/ws MNT -o OPTIONS" through /bin/sh with a cleared
// environment, so mount-ws is found only on sh's default PATH. So that
// this tree's code runs, not whatever is installed, the mount is made in a
// private mount namespace in which /usr/local/bin holds only a mount-ws
// that runs this test binary; the test reaches the mount through
// /proc/PID/root of the shell in that namespace. It writes a file, reads it
// back and from storage, unmounts with umount(8), and checks that mount-ws
// exited cleanly.
func TestFstabMount(t *testing.T) {
	requireFstabMount(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mnt, bin, logFile := filepath.Join(dir, "mnt"), filepath.Join(dir, "bin"), filepath.Join(dir, "mount-ws.log")
	for _, d := range []string{mnt, bin} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	helper := fmt.Sprintf("#!/bin/sh\nMOUNT_WS_TEST_AS_MAIN=1 exec %s \"$@\"\n", shellQuote(t, self))
	if err := os.WriteFile(filepath.Join(bin, "mount-ws"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	metricsAddr := freePort(t)
	// Every option as an fstab line would give it; add more here.
	options := []string{
		"api_url=" + stack.APIURL(),
		"token_file=" + tokenFile(t, token),
		"cache_dir=" + filepath.Join(dir, "cache"),
		"log_file=" + logFile,
		"metrics_addr=" + metricsAddr,
	}

	var stderr syncbuf.Buffer
	sh := exec.Command("sh", "-c", fstabScript, "sh", bin, mnt, strings.Join(options, ","))
	sh.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // also makes / private
	sh.Stderr = &stderr
	stdin, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// The test's own failures end here too: EOF on stdin unmounts, and
	// a mount-ws left behind (the shell died first) is killed, which
	// takes the namespace and its mount with it.
	t.Cleanup(func() {
		stdin.Close()
		for range lines {
		}
		sh.Wait()
		for _, pid := range mountWSPids(t, self, mnt) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	// waitLine returns the lines before want, failing if the shell ends first.
	waitLine := func(want string) []string {
		t.Helper()
		var before []string
		timeout := time.After(2 * time.Minute)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("the mount script ended before %q: %v\nstdout: %q\nstderr: %s", want, sh.Wait(), before, stderr.String())
				}
				if l == want {
					return before
				}
				before = append(before, l)
			case <-timeout:
				t.Fatalf("no %q from the mount script after 2 minutes\nstdout: %q\nstderr: %s", want, before, stderr.String())
			}
		}
	}

	out := waitLine("mounted")
	if len(out) != 1 || !strings.Contains(out[0], "mounted at "+mnt) {
		t.Errorf("mount printed %q; want mount-ws's one line naming the mountpoint", out)
	}
	pids := mountWSPids(t, self, mnt)
	if len(pids) != 1 {
		t.Fatalf("%d mount-ws processes serve %s (%v), want 1", len(pids), mnt, pids)
	}
	inNS := fmt.Sprintf("/proc/%d/root%s", sh.Process.Pid, mnt)
	if got, err := os.ReadFile(filepath.Join(inNS, "csv/iris.csv")); err != nil || !strings.HasPrefix(string(got), "sepal_length,") {
		t.Fatalf("read through the mount: %v", err)
	}
	name := "fstab-" + filepath.Base(dir) + ".txt"
	want := []byte("written through mount -t fuse.mount-ws\n")
	if err := os.WriteFile(filepath.Join(inNS, name), want, 0o644); err != nil {
		t.Fatalf("write through the mount: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(inNS, name)); err != nil || !bytes.Equal(got, want) {
		t.Errorf("read back %q, %v; want %q", got, err, want)
	}
	obj, err := stack.RootClient().GetObject(context.Background(), &s3.GetObjectInput{
		Bucket: aws.String(wsstack.DefaultBucket), Key: aws.String("cmd/ws/" + name),
	})
	if err != nil {
		t.Fatalf("the written file is not in storage: %v", err)
	}
	got, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("storage holds %q, %v; want %q", got, err, want)
	}
	if err := os.Remove(filepath.Join(inNS, name)); err != nil {
		t.Errorf("rm through the mount: %v", err)
	}
	// The options reached mount-ws: metrics are served, and they saw the
	// I/O above.
	fams, _ := scrape(t, metricsAddr)
	for _, series := range []struct {
		name   string
		labels map[string]string
	}{
		{"mount_ws_fuse_operations_total", map[string]string{"operation": "write", "errno": "ok"}},
		{"mount_ws_s3_requests_total", map[string]string{"operation": "PutObject", "outcome": "ok"}},
		{"mount_ws_credentials_refreshes_total", map[string]string{"outcome": "ok"}},
	} {
		if sum(fams, series.name, series.labels) < 1 {
			t.Errorf("%s%v is zero after I/O through the fstab-style mount", series.name, series.labels)
		}
	}
	if out, code := status(t, mnt); code != 0 {
		t.Errorf("mount-ws status of the fstab-style mount: exit %d\n%s", code, out)
	}

	fmt.Fprintln(stdin) // umount
	waitLine("unmounted")
	waitFor(t, "mount-ws to exit after umount", func() bool {
		return len(mountWSPids(t, self, mnt)) == 0
	})
	if err := sh.Wait(); err != nil {
		t.Errorf("mount script: %v\nstderr: %s", err, stderr.String())
	}
	if log, _ := os.ReadFile(logFile); !bytes.Contains(log, []byte("msg=unmounted")) {
		t.Errorf("mount-ws's log does not say it unmounted:\n%s", log)
	}
}

// requireFstabMount skips t (fails it when CI is set) unless mount(8) can
// run mount.fuse3 here in a private mount namespace: root, and fuse3.
func requireFstabMount(t *testing.T) {
	t.Helper()
	fusetest.Require(t)
	why := ""
	if os.Getuid() != 0 {
		why = "not root: mount -t fuse.mount-ws and a private mount namespace need root"
	} else if _, err := os.Stat("/sbin/mount.fuse3"); err != nil {
		why = "no /sbin/mount.fuse3 (apt-get install fuse3)"
	} else if _, err := exec.LookPath("mount"); err != nil {
		why = "no mount(8) (apt-get install mount)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("fstab test cannot run under CI: %s", why)
	}
	t.Skipf("fstab test skipped: %s", why)
}

// mountWSPids lists the processes running exe that name mnt among their
// arguments: the mount-ws serving it.
func mountWSPids(t *testing.T, exe, mnt string) []int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
		if args[0] != exe || !slices.Contains(args[1:], mnt) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		pids = append(pids, pid)
	}
	return pids
}

// shellQuote quotes s for sh; it fails on a single quote, which test
// binaries' paths never hold.
func shellQuote(t *testing.T, s string) string {
	t.Helper()
	if strings.Contains(s, "'") {
		t.Fatalf("cannot quote %q for sh", s)
	}
	return "'" + s + "'"
}
