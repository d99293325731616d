package mounttab

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

const table = `22 27 0:21 / /proc rw,relatime - proc proc rw
90 27 0:50 / /tmp/a rw,nosuid,nodev,noatime shared:7 - fuse.mount-ws mount-ws:cmd/ws rw,user_id=0,group_id=0
91 90 0:51 / /tmp/a rw,nosuid,nodev - fuse.sshfs host:/ rw,user_id=0,group_id=0
92 27 0:52 / /tmp/with\040space\134 rw - fuse mount-ws:cmd/ws rw
93 27 0:53 / /tmp/b rw master:1 shared:2 - tmpfs tmpfs rw
garbage
94 27 0:54 / /tmp/c rw -
36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
40 36 0:50 / /var/lib/kubelet/pods/x/my\040vol rw,nosuid,nodev - fuse.mount-ws mount-ws:acme/data rw,user_id=0
`

func TestParse(t *testing.T) {
	es := Parse([]byte(table))
	if len(es) != 7 {
		t.Fatalf("%d entries, want 7 (two lines are malformed): %+v", len(es), es)
	}
	want := Entry{MountPoint: "/tmp/a", FSType: "fuse.mount-ws", Source: "mount-ws:cmd/ws", SuperOpts: "rw,user_id=0,group_id=0"}
	if es[1] != want {
		t.Errorf("entry 1 = %+v, want %+v", es[1], want)
	}
	if Parse(nil) != nil {
		t.Error("an empty table gives entries")
	}
}

func TestTop(t *testing.T) {
	es := Parse([]byte(table))
	tests := []struct {
		mountPoint string
		ok, ours   bool
		fsType     string
		workspace  string
	}{
		{"/tmp/a", true, false, "fuse.sshfs", ""}, // stacked: the last one counts
		{"/tmp/with space\\", true, true, "fuse", "cmd/ws"},
		{"/tmp/b", true, false, "tmpfs", ""},
		{"/mnt2", true, false, "ext3", ""},
		{"/var/lib/kubelet/pods/x/my vol", true, true, "fuse.mount-ws", "acme/data"},
		{"/tmp/c", false, false, "", ""},
		{"/tmp", false, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.mountPoint, func(t *testing.T) {
			e, ok := Top(es, tt.mountPoint)
			if ok != tt.ok || e.IsMountWS() != tt.ours || e.FSType != tt.fsType || e.Workspace() != tt.workspace {
				t.Errorf("%+v %v, want found %v, mount-ws %v, type %q, workspace %q", e, ok, tt.ok, tt.ours, tt.fsType, tt.workspace)
			}
		})
	}
	if e, _ := Top(es[:2], "/tmp/a"); !e.IsMountWS() || e.Workspace() != "cmd/ws" {
		t.Errorf("fuse.mount-ws mount not recognised: %+v", e)
	}
}

func TestIsMountWS(t *testing.T) {
	for _, tt := range []struct {
		e    Entry
		want bool
	}{
		{Entry{FSType: "fuse.mount-ws", Source: "anything"}, true},
		{Entry{FSType: "fuse", Source: "mount-ws:a/b"}, true},
		{Entry{FSType: "fuseblk", Source: "mount-ws:a/b"}, true},
		{Entry{FSType: "fuse.sshfs", Source: "host:/"}, false},
		{Entry{FSType: "tmpfs", Source: "mount-ws:a/b"}, false}, // not FUSE: not ours whatever its source
	} {
		if got := tt.e.IsMountWS(); got != tt.want {
			t.Errorf("%+v: IsMountWS = %v, want %v", tt.e, got, tt.want)
		}
	}
}

func TestOwnedBy(t *testing.T) {
	e := Entry{SuperOpts: "rw,user_id=1000,group_id=1000"}
	for uid, want := range map[int]bool{1000: true, 100: false, 0: false, 10000: false} {
		if got := e.OwnedBy(uid); got != want {
			t.Errorf("OwnedBy(%d) = %v, want %v", uid, got, want)
		}
	}
	if (Entry{}).OwnedBy(0) {
		t.Error("a mount without user_id is owned by root")
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/a\040b`:     "/tmp/a b",
		`a\011b\012c\134`: "a\tb\nc\\",
		`/plain`:          "/plain",
		`a\04`:            `a\04`, // too short to be an escape
		`a\999b`:          `a\999b`,
		`a\400b`:          `a\400b`, // more than a byte
	} {
		if got := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// escape writes s as the kernel writes a path in the table.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(table), "/tmp/a b")
	f.Add([]byte(`92 27 0:52 / /tmp/x\040y\1 rw - fuse mount-ws:a\134b rw`), `x\y`)
	f.Add([]byte("1 2 3 4 5 6 - - - -\n\n - "), "\n")
	f.Fuzz(func(t *testing.T, b []byte, mountPoint string) {
		// Never more than one entry a line, and nothing from a line
		// without the separator.
		es := Parse(b)
		if lines := bytes.Count(b, []byte("\n")) + 1; len(es) > lines {
			t.Errorf("%d entries from %d lines", len(es), lines)
		}
		if !bytes.Contains(b, []byte(" - ")) && len(es) > 0 {
			t.Errorf("entries %+v from a table without \" - \"", es)
		}
		// Any mount point the kernel escapes comes back as it was.
		line := "90 27 0:50 / " + escape(mountPoint) + " rw shared:7 - fuse mount-ws:o/w rw,user_id=0"
		e, ok := Top(Parse([]byte(line)), mountPoint)
		if !ok || !e.IsMountWS() || e.Workspace() != "o/w" || !e.OwnedBy(0) {
			t.Errorf("mount point %q, line %q: %+v %v", mountPoint, line, e, ok)
		}
	})
}
