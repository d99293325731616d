package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// mountProc is mount-ws running in the foreground as a child process.
type mountProc struct {
	mnt     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // set before exited is closed
}

// startMount runs mount-ws with args (its flags, org/ws and mnt last) and
// returns once mnt is a mount point, or fails with the end of its log. The
// child gets its own process group, so a Ctrl-C in the terminal reaches
// only ws-soak, which then unmounts in order.
func startMount(bin string, args []string, mnt, logPath string) (*mountProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	defer logf.Close() // the child holds its own copy
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start mount-ws: %w", err)
	}
	p := &mountProc{mnt: mnt, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !isMountPoint(mnt) {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("mount-ws exited before mounting (%v): %s", p.waitErr, p.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("mount-ws did not mount within 30s: %s", p.logTail())
		}
	}
	return p, nil
}

// isMountPoint reports whether dir is on another device than its parent.
func isMountPoint(dir string) bool {
	var a, b syscall.Stat_t
	if syscall.Stat(dir, &a) != nil || syscall.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

func (p *mountProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return string(b)
}

// rssKiB is mount-ws's resident set size now.
func (p *mountProc) rssKiB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// unmount unmounts (retrying while busy) and waits up to wait for mount-ws
// to upload what is left and exit. It returns mount-ws's exit error: a
// non-zero exit means a file was still unsaved.
func (p *mountProc) unmount(wait time.Duration) error {
	var err error
	for range 100 {
		if err = syscall.Unmount(p.mnt, 0); err == nil || !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.kill()
		return fmt.Errorf("unmount %s: %w", p.mnt, err)
	}
	select {
	case <-p.exited:
	case <-time.After(wait):
		p.kill()
		return fmt.Errorf("mount-ws did not exit within %v of the unmount; killed", wait)
	}
	if p.waitErr != nil {
		return fmt.Errorf("mount-ws exited with %v: %s", p.waitErr, p.logTail())
	}
	return nil
}

// kill ends mount-ws at once and detaches its mount, so none is left.
func (p *mountProc) kill() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	if isMountPoint(p.mnt) {
		syscall.Unmount(p.mnt, syscall.MNT_DETACH)
	}
}
