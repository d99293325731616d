package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// checkMountpoint wants an existing, empty directory. A dead mount-ws
// mount there, which a killed mount-ws leaves behind ("Transport endpoint
// is not connected"), is detached first, with one line on stderr saying
// so. Nothing else is ever unmounted: a live mount, or a dead mount of
// another filesystem, fails here as before.
func checkMountpoint(path string, stderr io.Writer) error {
	if err := detachDeadMounts(path, stderr); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return mountError{fmt.Errorf("mountpoint %s does not exist: create it with mkdir -p %s", path, path)}
	}
	if err != nil {
		return mountError{fmt.Errorf("mountpoint %s: %w (is a stale mount there? try fusermount3 -u %s)", path, err, path)}
	}
	if !fi.IsDir() {
		return mountError{fmt.Errorf("mountpoint %s is not a directory", path)}
	}
	f, err := os.Open(path)
	if err != nil {
		return mountError{fmt.Errorf("mountpoint %s: %w", path, err)}
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return mountError{fmt.Errorf("mountpoint %s is not empty (is something mounted there already?)", path)}
	}
	return nil
}

// maxDeadMounts bounds how many dead mounts stacked on one mountpoint
// detachDeadMounts removes (each kill -9 and restart with an older
// mount-ws could have left one).
const maxDeadMounts = 8

// detachDeadMounts lazily unmounts the mount at path while it is a FUSE
// mount of mount-ws whose process is gone, saying so on stderr once per
// mount. It does nothing, and returns nil, when path is no mountpoint,
// when /proc/self/mountinfo cannot be read, when the mount there belongs
// to another filesystem, or when it answers; it fails only when a dead
// mount-ws mount cannot be detached.
func detachDeadMounts(path string, stderr io.Writer) error {
	target := canonicalPath(path)
	for range maxDeadMounts {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return nil
		}
		m, ok := topMount(b, target)
		if !ok || !m.isMountWS() || !isDeadFUSE(path) {
			return nil
		}
		if err := detach(path); err != nil {
			return mountError{fmt.Errorf("mountpoint %s holds a dead mount-ws mount that could not be detached: %w (try umount -l %s or fusermount3 -uz %s)", path, err, path, path)}
		}
		fmt.Fprintf(stderr, "mount-ws: found a dead mount-ws mount at %s (its mount-ws was killed?) and detached it\n", path)
	}
	return nil
}

// canonicalPath is path as /proc/self/mountinfo spells a mount there:
// absolute, symbolic links resolved. The last element is resolved only if
// it can be: on a dead mount even lstat may fail.
func canonicalPath(path string) string {
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

// isDeadFUSE reports whether the directory at path is a FUSE mount whose
// server is gone. It lists the directory: unlike stat, which the kernel may
// answer from its attribute cache, opening and reading a FUSE directory
// always reaches the server, and a dead one answers ENOTCONN (or
// ECONNABORTED once the connection was aborted by hand).
func isDeadFUSE(path string) bool {
	f, err := os.Open(path)
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
	}
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED)
}

// detach lazily unmounts path: directly as root, else with fusermount3,
// which lets a user unmount their own FUSE mounts.
func detach(path string) error {
	if os.Geteuid() == 0 {
		return syscall.Unmount(path, syscall.MNT_DETACH)
	}
	out, err := exec.Command("fusermount3", "-u", "-z", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusermount3 -uz: %s: %w", bytes.TrimSpace(out), err)
	}
	return nil
}

// mountInfo is what detachDeadMounts needs of a line of
// /proc/self/mountinfo (see proc_pid_mountinfo(5)).
type mountInfo struct {
	mountPoint string
	fsType     string // "fuse.mount-ws" for a mount-ws mount
	source     string // "mount-ws:ORG/WS" for a mount-ws mount
	superOpts  string // the filesystem's options: FUSE's name the owner (user_id=N)
}

// ownedBy reports whether a FUSE mount was made by uid.
func (m mountInfo) ownedBy(uid int) bool {
	for _, o := range strings.Split(m.superOpts, ",") {
		if o == "user_id="+strconv.Itoa(uid) {
			return true
		}
	}
	return false
}

// mountWSMounts lists the mount points of the mount-ws mounts uid made.
func mountWSMounts(mountinfo []byte, uid int) []string {
	var mps []string
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if m, ok := parseMountInfoLine(sc.Text()); ok && m.isMountWS() && m.ownedBy(uid) {
			mps = append(mps, m.mountPoint)
		}
	}
	return mps
}

// isMountWS reports whether m is a FUSE mount made by mount-ws: the type
// fs.Mount gives it, or the source name run gives it.
func (m mountInfo) isMountWS() bool {
	return m.fsType == "fuse.mount-ws" || (strings.HasPrefix(m.fsType, "fuse") && strings.HasPrefix(m.source, "mount-ws:"))
}

// topMount returns the last mount at mountPoint in mountinfo, the one a
// path lookup reaches when several are stacked there.
func topMount(mountinfo []byte, mountPoint string) (mountInfo, bool) {
	var top mountInfo
	found := false
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m, ok := parseMountInfoLine(sc.Text())
		if ok && m.mountPoint == mountPoint {
			top, found = m, true
		}
	}
	return top, found
}

// parseMountInfoLine parses one line of /proc/self/mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Field 5 is the mount point; after the optional fields and "-" come the
// filesystem type and the source. Spaces, tabs, newlines and backslashes
// in them are written as octal escapes (\040).
func parseMountInfoLine(line string) (mountInfo, bool) {
	fields := strings.Split(line, " ")
	if len(fields) < 10 {
		return mountInfo{}, false
	}
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(fields) {
		return mountInfo{}, false
	}
	m := mountInfo{
		mountPoint: unescapeMountInfo(fields[4]),
		fsType:     unescapeMountInfo(fields[sep+1]),
		source:     unescapeMountInfo(fields[sep+2]),
	}
	if sep+3 < len(fields) {
		m.superOpts = fields[sep+3]
	}
	return m, true
}

// unescapeMountInfo undoes the kernel's octal escapes (\ooo).
func unescapeMountInfo(s string) string {
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
