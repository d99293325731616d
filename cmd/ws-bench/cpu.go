package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the times in /proc/PID/stat. The kernel reports
// them in USER_HZ, which is 100 on x86 and arm64 whatever the kernel's own
// tick rate (Go cannot ask sysconf without cgo).
const userHZ = 100

// procCPU returns the user plus system CPU time process pid has used so
// far, all its threads included, also those that have exited.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	d, err := parseStatCPU(b)
	if err != nil {
		return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
	}
	return d, nil
}

// parseStatCPU adds utime and stime, fields 14 and 15 of a /proc/PID/stat
// line. The command name (field 2) is in parentheses and may hold spaces
// and parentheses itself, so fields are counted from the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("stat: no command name")
	}
	// Fields after the name start at field 3 (state).
	f := bytes.Fields(stat[i+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("stat: %d fields after the command name, want more than %d", len(f), stime)
	}
	var ticks int64
	for _, field := range [][]byte{f[utime], f[stime]} {
		n, err := strconv.ParseInt(string(field), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// cpuMsPerMiB is the CPU time process pid used since it had used start, in
// milliseconds per MiB of n bytes read; 0 if it cannot be read (the process
// has exited).
func cpuMsPerMiB(pid int, start time.Duration, n int64) float64 {
	now, err := procCPU(pid)
	if err != nil || n <= 0 {
		return 0
	}
	return float64(now-start) / float64(time.Millisecond) / (float64(n) / (1 << 20))
}
