package e2e

import (
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestReadOnly(t *testing.T) {
	t.Parallel()
	ws := newWorkspace(t)
	ws.putObject(t, "file.txt", []byte("read only"), nil)
	ws.putObject(t, "dir/inner.txt", []byte("inner"), nil)
	ws.putObject(t, "empty/", nil, nil)
	before := ws.listKeys(t, "")
	m := mountWS(t, ws, mountOpts{readOnly: true})
	if got, err := os.ReadFile(m.path("file.txt")); err != nil || string(got) != "read only" {
		t.Fatalf("read file.txt on the read-only mount: %q, %v", got, err)
	}
	ops := []struct {
		name string
		do   func() error
	}{
		{"create", func() error {
			f, err := os.OpenFile(m.path("new.txt"), os.O_WRONLY|os.O_CREATE, 0o644)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"open for writing", func() error {
			f, err := os.OpenFile(m.path("file.txt"), os.O_WRONLY, 0)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"open with O_TRUNC", func() error {
			f, err := os.OpenFile(m.path("file.txt"), os.O_RDONLY|os.O_TRUNC, 0)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"mkdir", func() error { return os.Mkdir(m.path("newdir"), 0o755) }},
		{"unlink", func() error { return os.Remove(m.path("file.txt")) }},
		{"rmdir", func() error { return syscall.Rmdir(m.path("empty")) }},
		{"rename a file", func() error { return os.Rename(m.path("file.txt"), m.path("renamed.txt")) }},
		{"rename a directory", func() error { return os.Rename(m.path("dir"), m.path("dir2")) }},
		{"chmod", func() error { return os.Chmod(m.path("file.txt"), 0o600) }},
		{"chown", func() error { return os.Chown(m.path("file.txt"), 1, 1) }},
		{"utimens", func() error { return os.Chtimes(m.path("file.txt"), time.Unix(1, 0), time.Unix(1, 0)) }},
		{"truncate", func() error { return os.Truncate(m.path("file.txt"), 1) }},
		{"symlink", func() error { return os.Symlink("file.txt", m.path("link")) }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			wantErrno(t, op.name+" on a --read-only mount", op.do(), syscall.EROFS)
		})
	}
	if after := ws.listKeys(t, ""); !slices.Equal(after, before) {
		t.Errorf("bucket: keys changed on a --read-only mount: %q, want %q", after, before)
	}
	ws.wantObject(t, "file.txt", []byte("read only"))
}
