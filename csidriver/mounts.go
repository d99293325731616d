package csidriver

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// mountEntry is what the driver needs of a line of /proc/self/mountinfo
// (proc_pid_mountinfo(5)).
type mountEntry struct {
	mountPoint string
	fsType     string // "fuse.mount-ws" for a mount-ws mount
	source     string // "mount-ws:ORG/WS" for a mount-ws mount
}

// fsNamePrefix starts the source of every mount-ws mount; the workspace
// follows (mount-ws's run.go sets it).
const fsNamePrefix = "mount-ws:"

// isMountWS reports whether m was made by mount-ws.
func (m mountEntry) isMountWS() bool {
	return m.fsType == "fuse.mount-ws" || (strings.HasPrefix(m.fsType, "fuse") && strings.HasPrefix(m.source, fsNamePrefix))
}

// workspace is the ORG/WS a mount-ws mount serves ("" for other mounts).
func (m mountEntry) workspace() string {
	if !m.isMountWS() {
		return ""
	}
	return strings.TrimPrefix(m.source, fsNamePrefix)
}

// readMounts parses /proc/self/mountinfo.
func readMounts() ([]mountEntry, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMountInfo(b), nil
}

// parseMountInfo parses mountinfo lines, skipping malformed ones:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Field 5 is the mount point; after the optional fields and "-" come the
// type and the source, with spaces and the like written as octal escapes.
func parseMountInfo(b []byte) []mountEntry {
	var out []mountEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), " ")
		if len(fields) < 10 {
			continue
		}
		sep := slices.Index(fields[6:], "-")
		if sep < 0 || 6+sep+2 >= len(fields) {
			continue
		}
		sep += 6
		out = append(out, mountEntry{
			mountPoint: unescapeOctal(fields[4]),
			fsType:     unescapeOctal(fields[sep+1]),
			source:     unescapeOctal(fields[sep+2]),
		})
	}
	return out
}

// topMount is the last mount at path, the one a lookup reaches when
// several are stacked there.
func topMount(mounts []mountEntry, path string) (mountEntry, bool) {
	var top mountEntry
	found := false
	for _, m := range mounts {
		if m.mountPoint == path {
			top, found = m, true
		}
	}
	return top, found
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// canonical is path as mountinfo spells it: absolute, symbolic links
// resolved as far as they can be (on a dead mount even lstat fails).
func canonical(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	if p, err := filepath.EvalSymlinks(abs); err == nil {
		return p
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs))
	}
	return abs
}

// isDead reports whether the FUSE mount at path has lost its server.
// Listing reaches the server (stat may be answered from the kernel's
// cache); a dead one answers ENOTCONN, or ECONNABORTED once aborted.
func isDead(path string) bool {
	f, err := os.Open(path)
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
	}
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED)
}
