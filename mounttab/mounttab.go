// Package mounttab is the kernel's table of mounts, as mount-ws reads it:
// /proc/self/mountinfo (proc_pid_mountinfo(5)), reduced to what mount-ws,
// its CSI driver and ws-bench need to find the mount at a path, tell a
// mount-ws mount from any other, and tell a dead one from a live one.
//
// Pitfalls: the table spells paths as the kernel resolved them, so compare
// against Canonical(path), never the path as given; several mounts can be
// stacked on one point, and only the last (Top) is what a lookup reaches;
// a dead FUSE mount still stands in the table until it is detached.
//
// It imports nothing of mount-ws, so every command can share it.
package mounttab

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

// FSNamePrefix starts the source of every mount-ws mount, followed by its
// ORG/WS: it is how a mount is known as mount-ws's when its type is plain
// "fuse".
const FSNamePrefix = "mount-ws:"

// Entry is what mount-ws needs of one line of the table.
type Entry struct {
	MountPoint string
	FSType     string // "fuse.mount-ws" for a mount-ws mount
	Source     string // FSNamePrefix + "ORG/WS" for a mount-ws mount
	SuperOpts  string // the filesystem's own options: FUSE's name its owner (user_id=N)
}

// IsMountWS reports whether e is a FUSE mount made by mount-ws: by the type
// fs.Mount gives it, or, where the type is only "fuse", by its source.
func (e Entry) IsMountWS() bool {
	return e.FSType == "fuse.mount-ws" || (strings.HasPrefix(e.FSType, "fuse") && strings.HasPrefix(e.Source, FSNamePrefix))
}

// Workspace is the ORG/WS a mount-ws mount serves, "" for other mounts.
func (e Entry) Workspace() string {
	if !e.IsMountWS() {
		return ""
	}
	return strings.TrimPrefix(e.Source, FSNamePrefix)
}

// OwnedBy reports whether a FUSE mount was made by uid, so that a user's
// commands act only on that user's mounts.
func (e Entry) OwnedBy(uid int) bool {
	return slices.Contains(strings.Split(e.SuperOpts, ","), "user_id="+strconv.Itoa(uid))
}

// Read reads and parses this process's table. Its error is the one reading
// /proc/self/mountinfo gave.
func Read() ([]Entry, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return Parse(b), nil
}

// Parse parses the lines of a mountinfo table, in order, skipping the
// malformed ones.
func Parse(b []byte) []Entry {
	var out []Entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if e, ok := parseLine(sc.Text()); ok {
			out = append(out, e)
		}
	}
	return out
}

// parseLine parses one line:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// Field 5 is the mount point; after the optional fields and "-" come the
// filesystem type, the source and the super options. It returns the zero
// Entry when not ok.
func parseLine(line string) (Entry, bool) {
	fields := strings.Split(line, " ")
	if len(fields) < 10 {
		return Entry{}, false
	}
	sep := slices.Index(fields[6:], "-")
	if sep < 0 || 6+sep+2 >= len(fields) {
		return Entry{}, false
	}
	sep += 6
	e := Entry{
		MountPoint: unescape(fields[4]),
		FSType:     unescape(fields[sep+1]),
		Source:     unescape(fields[sep+2]),
	}
	if sep+3 < len(fields) {
		e.SuperOpts = fields[sep+3]
	}
	return e, true
}

// unescape undoes the kernel's octal escapes (\ooo), which it writes for
// spaces, tabs, newlines and backslashes; anything else stays as it is.
func unescape(s string) string {
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

// Top returns the last entry at mountPoint, the one a path lookup reaches
// when several are stacked there. mountPoint must be spelt as the table
// spells it (see Canonical).
func Top(entries []Entry, mountPoint string) (Entry, bool) {
	var top Entry
	found := false
	for _, e := range entries {
		if e.MountPoint == mountPoint {
			top, found = e, true
		}
	}
	return top, found
}

// Canonical is path as the table spells a mount there: absolute, symbolic
// links resolved. The last element is resolved only if it can be: on a
// dead mount even lstat fails.
func Canonical(path string) string {
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

// IsDead reports whether the directory at path is a FUSE mount whose server
// is gone. It lists the directory: stat may be answered from the kernel's
// attribute cache, but a listing always reaches the server, and a dead one
// answers ENOTCONN (ECONNABORTED once the connection was aborted by hand).
// Any other outcome, success or not, is "not dead".
func IsDead(path string) bool {
	f, err := os.Open(path)
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
	}
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED)
}
