package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// startBackground re-runs mount-ws as a detached child in its own session
// and waits until the child reports on a pipe that the mount is ready, or
// why it failed. Only then does the parent exit, so "mount-ws ... && ls"
// works. The child inherits the environment (where WS_TOKEN may be), never
// a secret in its arguments.
func startBackground(ctx context.Context, cfg config, org, ws string, args []string, stdout, stderr io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start background mount-ws: %w", err)
	}
	w.Close()
	go cmd.Wait() // reap the child if it dies while we wait

	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		return mountError{errors.New("the background mount-ws exited without mounting (see its log, or run with --foreground)")}
	}
	line = strings.TrimSpace(line)
	if line == "ok" {
		fmt.Fprintf(stdout, "mount-ws: %s/%s mounted at %s; log: %s\n", org, ws, cfg.mountpoint, logPath(cfg, org, ws))
		return nil
	}
	code, msg, _ := strings.Cut(strings.TrimPrefix(line, "err "), " ")
	n, _ := strconv.Atoi(code)
	fmt.Fprintln(stderr, "mount-ws:", msg)
	return reportedError{code: max(n, 1)}
}

// reportedError is a failure the background child already described.
type reportedError struct{ code int }

func (e reportedError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// ready tells a waiting parent (if any) how the mount went, exactly once.
type ready struct{ f *os.File }

func readyReporter() *ready {
	fd, err := strconv.Atoi(os.Getenv(readyFDEnv))
	if err != nil {
		return &ready{}
	}
	os.Unsetenv(readyFDEnv)
	return &ready{f: os.NewFile(uintptr(fd), "ready")}
}

func (r *ready) ok() { r.send("ok") }

// fail reports err (nil after ok is a no-op).
func (r *ready) fail(err error) {
	if err != nil {
		r.send(fmt.Sprintf("err %d %s", exitCode(err, io.Discard), strings.ReplaceAll(err.Error(), "\n", " ")))
	}
	r.send("")
}

func (r *ready) send(msg string) {
	if r.f == nil {
		return
	}
	if msg != "" {
		fmt.Fprintln(r.f, msg)
	}
	r.f.Close()
	r.f = nil
}
