package csidriver

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// findMountWS returns the pid of the mount-ws process serving target:
// a process whose program is named mount-ws and whose last two arguments
// are workspace and target, as the driver starts it. 0 if none.
func findMountWS(workspace, target string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if argv := cmdline(pid); isMountWSFor(argv, workspace, target) {
			return pid
		}
	}
	return 0
}

func isMountWSFor(argv []string, workspace, target string) bool {
	n := len(argv)
	return n >= 3 && filepath.Base(argv[0]) == "mount-ws" && argv[n-2] == workspace && argv[n-1] == target
}

// cmdline is /proc/PID/cmdline split into arguments (nil if gone).
func cmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00")
}

// exited reports whether pid is gone or a zombie. A zombie is reaped
// when it is this process's child: in a container the driver is often
// PID 1, and orphaned mount-ws processes become its children.
func exited(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) STATE ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	if b[i+2] == 'Z' || b[i+2] == 'X' {
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
		return true
	}
	return false
}

// waitExit polls until pid has exited or ctx is done; it reports whether
// the process exited.
func waitExit(ctx context.Context, pid int) bool {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !exited(pid) {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}
