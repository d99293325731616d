package e2e

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// wantKeys checks the exact set of keys under the workspace prefix + rel.
func (w *workspace) wantKeys(t *testing.T, rel string, want ...string) {
	t.Helper()
	got := w.listKeys(t, rel)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("bucket: keys under %s: %q, want %q", w.key(rel), got, want)
	}
}

// wantGone checks that the mount no longer shows path.
func wantGone(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("mount: lstat %s: %v, want ENOENT", path, errOrSuccess(err))
	}
}

func errOrSuccess(err error) any {
	if err == nil {
		return "success"
	}
	return err
}

func TestEditorSave(t *testing.T) {
	t.Parallel()
	ws := newWorkspace(t)
	ws.putObject(t, "notes/config.yaml", []byte("version: 1\n"), nil)
	m := mountWS(t, ws, mountOpts{})
	tests := []struct {
		name, file, tmp string
		before          []byte // nil: created through the mount first
	}{
		{"over a file from the bucket", "notes/config.yaml", "notes/.config.yaml.tmp", []byte("version: 1\n")},
		{"over a file written through the mount", "draft.md", "draft.md~", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before == nil {
				writeFile(t, m.path(tt.file), strings.NewReader("# draft 1\n"), 4096)
			}
			want := []byte(strings.Repeat("saved by the editor\n", 500))
			f, err := os.OpenFile(m.path(tt.tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err != nil {
				t.Fatalf("create %s: %v", tt.tmp, err)
			}
			if _, err := f.Write(want); err != nil {
				t.Fatalf("write %s: %v", tt.tmp, err)
			}
			if err := f.Sync(); err != nil {
				t.Fatalf("fsync %s: %v", tt.tmp, err)
			}
			ws.wantObject(t, tt.tmp, want)
			if err := f.Close(); err != nil {
				t.Fatalf("close %s: %v", tt.tmp, err)
			}
			if err := os.Rename(m.path(tt.tmp), m.path(tt.file)); err != nil {
				t.Fatalf("rename %s over %s: %v", tt.tmp, tt.file, err)
			}
			ws.wantObject(t, tt.file, want)
			ws.wantNoObject(t, tt.tmp)
			wantMountBytes(t, m.path(tt.file), want)
			wantGone(t, m.path(tt.tmp))
		})
	}

	// vim without backupcopy: the original moves to a backup, the new
	// version is written under the name, and the backup goes.
	t.Run("vim-style: backup, write anew, remove the backup", func(t *testing.T) {
		writeFile(t, m.path("script.py"), strings.NewReader("print(1)\n"), 4096)
		if err := os.Rename(m.path("script.py"), m.path("script.py~")); err != nil {
			t.Fatalf("rename to the backup: %v", err)
		}
		want := []byte("print(2)\n")
		f, err := os.OpenFile(m.path("script.py"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			t.Fatalf("create the new version: %v", err)
		}
		if _, err := f.Write(want); err != nil {
			t.Fatalf("write: %v", err)
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("fsync: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := os.Remove(m.path("script.py~")); err != nil {
			t.Fatalf("remove the backup: %v", err)
		}
		ws.wantObject(t, "script.py", want)
		ws.wantNoObject(t, "script.py~")
		wantMountBytes(t, m.path("script.py"), want)
	})
	ws.wantKeys(t, "", "draft.md", "notes/config.yaml", "script.py")
}

func TestDirectories(t *testing.T) {
	t.Parallel()
	ws := newWorkspace(t)
	// Implicit directories: keys only, no markers.
	ws.putObject(t, "implicit/a.txt", []byte("a"), nil)
	ws.putObject(t, "implicit/sub/b.txt", []byte("b"), nil)
	m := mountWS(t, ws, mountOpts{})

	t.Run("mkdir makes a marker", func(t *testing.T) {
		if err := os.Mkdir(m.path("made"), 0o755); err != nil {
			t.Fatalf("mkdir made: %v", err)
		}
		if ws.head(t, "made/") == nil {
			t.Errorf("bucket: no marker object %s after mkdir", ws.key("made/"))
		}
		if fi, err := os.Stat(m.path("made")); err != nil || !fi.IsDir() {
			t.Errorf("mount: stat made: %v, want a directory", errOrSuccess(err))
		}
		wantErrno(t, "mkdir of an existing directory", os.Mkdir(m.path("made"), 0o755), syscall.EEXIST)
	})

	t.Run("mkdir -p", func(t *testing.T) {
		if err := os.MkdirAll(m.path("p/q/r"), 0o755); err != nil {
			t.Fatalf("mkdir -p p/q/r: %v", err)
		}
		ws.wantKeys(t, "p/", "p/", "p/q/", "p/q/r/")
	})

	t.Run("rmdir", func(t *testing.T) {
		if err := os.MkdirAll(m.path("full/inner"), 0o755); err != nil {
			t.Fatalf("mkdir -p full/inner: %v", err)
		}
		writeFile(t, m.path("full/file.txt"), strings.NewReader("x"), 4096)
		wantErrno(t, "rmdir of a directory holding a file and a directory", syscall.Rmdir(m.path("full")), syscall.ENOTEMPTY, syscall.EEXIST)
		wantErrno(t, "rmdir of an implicit directory holding files", syscall.Rmdir(m.path("implicit")), syscall.ENOTEMPTY, syscall.EEXIST)
		ws.wantKeys(t, "full/", "full/", "full/file.txt", "full/inner/")

		if err := os.Remove(m.path("full/file.txt")); err != nil {
			t.Fatalf("unlink full/file.txt: %v", err)
		}
		wantErrno(t, "rmdir of a directory holding an empty directory", syscall.Rmdir(m.path("full")), syscall.ENOTEMPTY, syscall.EEXIST)
		if err := syscall.Rmdir(m.path("full/inner")); err != nil {
			t.Fatalf("rmdir of the empty full/inner: %v", err)
		}
		if err := syscall.Rmdir(m.path("full")); err != nil {
			t.Fatalf("rmdir of full once empty: %v", err)
		}
		ws.wantKeys(t, "full")
		wantGone(t, m.path("full"))
		wantErrno(t, "rmdir of a missing directory", syscall.Rmdir(m.path("full")), syscall.ENOENT)
	})

	t.Run("unlink", func(t *testing.T) {
		writeFile(t, m.path("gone.txt"), strings.NewReader("bye"), 4096)
		if err := os.Remove(m.path("gone.txt")); err != nil {
			t.Fatalf("unlink gone.txt: %v", err)
		}
		ws.wantNoObject(t, "gone.txt")
		wantGone(t, m.path("gone.txt"))
		wantErrno(t, "unlink of a missing file", os.Remove(m.path("gone.txt")), syscall.ENOENT)
	})

	t.Run("an implicit directory vanishes with its last file", func(t *testing.T) {
		if _, err := os.Stat(m.path("implicit/sub")); err != nil {
			t.Fatalf("stat implicit/sub before: %v", err)
		}
		if err := os.Remove(m.path("implicit/sub/b.txt")); err != nil {
			t.Fatalf("unlink implicit/sub/b.txt: %v", err)
		}
		wantGone(t, m.path("implicit/sub"))
		names, err := readDirNames(m.path("implicit"))
		if err != nil || !slices.Equal(names, []string{"a.txt"}) {
			t.Errorf("mount: ls implicit: %q, %v; want [a.txt]", names, err)
		}
		if err := os.Remove(m.path("implicit/a.txt")); err != nil {
			t.Fatalf("unlink implicit/a.txt: %v", err)
		}
		wantGone(t, m.path("implicit"))
		ws.wantKeys(t, "implicit")
	})

	t.Run("unlink of a file that is open", func(t *testing.T) {
		writeFile(t, m.path("open.txt"), strings.NewReader("still readable"), 4096)
		f, err := os.Open(m.path("open.txt"))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		defer f.Close()
		if err := os.Remove(m.path("open.txt")); err != nil {
			t.Fatalf("unlink while open: %v", err)
		}
		ws.wantNoObject(t, "open.txt")
		wantGone(t, m.path("open.txt"))
	})
}

func readDirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, err
}

func TestRename(t *testing.T) {
	t.Parallel()
	ws := newWorkspace(t)
	m := mountWS(t, ws, mountOpts{})
	put := func(t *testing.T, rel, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(m.path(rel)), 0o755); err != nil {
			t.Fatalf("mkdir -p %s: %v", filepath.Dir(rel), err)
		}
		writeFile(t, m.path(rel), strings.NewReader(content), 4096)
	}

	t.Run("file to a new name in another directory", func(t *testing.T) {
		put(t, "r1/a.txt", "A")
		if err := os.Mkdir(m.path("r1/dest"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(m.path("r1/a.txt"), m.path("r1/dest/b.txt")); err != nil {
			t.Fatalf("rename: %v", err)
		}
		ws.wantKeys(t, "r1/", "r1/", "r1/dest/", "r1/dest/b.txt")
		ws.wantObject(t, "r1/dest/b.txt", []byte("A"))
		wantMountBytes(t, m.path("r1/dest/b.txt"), []byte("A"))
		wantGone(t, m.path("r1/a.txt"))
	})

	t.Run("file over an existing file", func(t *testing.T) {
		put(t, "r2/a.txt", "new contents")
		put(t, "r2/b.txt", "old contents, longer")
		if err := os.Rename(m.path("r2/a.txt"), m.path("r2/b.txt")); err != nil {
			t.Fatalf("rename over: %v", err)
		}
		ws.wantKeys(t, "r2/", "r2/", "r2/b.txt")
		ws.wantObject(t, "r2/b.txt", []byte("new contents"))
		wantMountBytes(t, m.path("r2/b.txt"), []byte("new contents"))
	})

	t.Run("large file", func(t *testing.T) {
		want := bytes.Repeat([]byte("0123456789abcdef"), 12*mib/16+1)
		if err := os.Mkdir(m.path("r3"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, m.path("r3/big.bin"), bytes.NewReader(want), mib)
		if err := os.Rename(m.path("r3/big.bin"), m.path("r3/moved.bin")); err != nil {
			t.Fatalf("rename: %v", err)
		}
		ws.wantKeys(t, "r3/", "r3/", "r3/moved.bin")
		ws.wantObject(t, "r3/moved.bin", want)
	})

	t.Run("directory with files and subdirectories", func(t *testing.T) {
		files := map[string]string{
			"one.txt":           "1",
			"two.txt":           "22",
			"sub/three.txt":     "333",
			"sub/deep/four.txt": "4444",
		}
		for rel, c := range files {
			put(t, "r4/src/"+rel, c)
		}
		if err := os.Mkdir(m.path("r4/src/empty"), 0o755); err != nil {
			t.Fatal(err)
		}
		// Files that only exist in the bucket (an implicit subdirectory).
		ws.putObject(t, "r4/src/implicit/five.txt", []byte("55555"), nil)
		files["implicit/five.txt"] = "55555"
		if err := os.Rename(m.path("r4/src"), m.path("r4/dst")); err != nil {
			t.Fatalf("rename r4/src r4/dst: %v", err)
		}
		if left := ws.listKeys(t, "r4/src"); len(left) > 0 {
			t.Errorf("bucket: keys left under the old name: %q", left)
		}
		for rel, c := range files {
			ws.wantObject(t, "r4/dst/"+rel, []byte(c))
			wantMountBytes(t, m.path("r4/dst/"+rel), []byte(c))
		}
		if fi, err := os.Stat(m.path("r4/dst/empty")); err != nil || !fi.IsDir() {
			t.Errorf("mount: stat r4/dst/empty: %v, want a directory", errOrSuccess(err))
		}
		if ws.head(t, "r4/dst/empty/") == nil {
			t.Errorf("bucket: the empty directory's marker %s did not move", ws.key("r4/dst/empty/"))
		}
		wantGone(t, m.path("r4/src"))
	})

	t.Run("directory over an empty directory", func(t *testing.T) {
		put(t, "r5/src/f.txt", "f")
		if err := os.Mkdir(m.path("r5/dst"), 0o755); err != nil {
			t.Fatal(err)
		}
		// rename(2) itself: Go's os.Rename refuses an existing directory
		// as the target before asking the filesystem.
		if err := syscall.Rename(m.path("r5/src"), m.path("r5/dst")); err != nil {
			t.Fatalf("rename a directory over an empty one: %v", err)
		}
		ws.wantObject(t, "r5/dst/f.txt", []byte("f"))
		if left := ws.listKeys(t, "r5/src"); len(left) > 0 {
			t.Errorf("bucket: keys left under the old name: %q", left)
		}
	})

	t.Run("directory over a non-empty directory", func(t *testing.T) {
		put(t, "r6/src/f.txt", "f")
		put(t, "r6/dst/g.txt", "g")
		// rename(2) itself, as above: os.Rename would answer EEXIST alone.
		wantErrno(t, "rename a directory over a non-empty one", syscall.Rename(m.path("r6/src"), m.path("r6/dst")), syscall.ENOTEMPTY, syscall.EEXIST)
		ws.wantObject(t, "r6/src/f.txt", []byte("f"))
		ws.wantObject(t, "r6/dst/g.txt", []byte("g"))
	})

	t.Run("RENAME_NOREPLACE", func(t *testing.T) {
		put(t, "r7/a.txt", "A")
		put(t, "r7/b.txt", "B")
		err := unix.Renameat2(unix.AT_FDCWD, m.path("r7/a.txt"), unix.AT_FDCWD, m.path("r7/b.txt"), unix.RENAME_NOREPLACE)
		wantErrno(t, "renameat2(RENAME_NOREPLACE) onto an existing file", err, syscall.EEXIST)
		ws.wantObject(t, "r7/a.txt", []byte("A"))
		ws.wantObject(t, "r7/b.txt", []byte("B"))
		if err := unix.Renameat2(unix.AT_FDCWD, m.path("r7/a.txt"), unix.AT_FDCWD, m.path("r7/c.txt"), unix.RENAME_NOREPLACE); err != nil {
			t.Errorf("renameat2(RENAME_NOREPLACE) onto a free name: %v", err)
		}
		ws.wantKeys(t, "r7/", "r7/", "r7/b.txt", "r7/c.txt")
		ws.wantObject(t, "r7/c.txt", []byte("A"))
	})

	t.Run("RENAME_EXCHANGE", func(t *testing.T) {
		put(t, "r8/a.txt", "A")
		put(t, "r8/b.txt", "BB")
		err := unix.Renameat2(unix.AT_FDCWD, m.path("r8/a.txt"), unix.AT_FDCWD, m.path("r8/b.txt"), unix.RENAME_EXCHANGE)
		// The README promises EINVAL: S3 cannot swap two objects
		// atomically, and a swap that could be seen half done is worse
		// than none. Nothing may have changed.
		if !errors.Is(err, syscall.EINVAL) {
			t.Errorf("renameat2(RENAME_EXCHANGE): %v, want EINVAL", err)
		}
		wantA, wantB := "A", "BB"
		ws.wantKeys(t, "r8/", "r8/", "r8/a.txt", "r8/b.txt")
		ws.wantObject(t, "r8/a.txt", []byte(wantA))
		ws.wantObject(t, "r8/b.txt", []byte(wantB))
		wantMountBytes(t, m.path("r8/a.txt"), []byte(wantA))
		wantMountBytes(t, m.path("r8/b.txt"), []byte(wantB))
	})

	t.Run("file renamed while open for writing", func(t *testing.T) {
		if err := os.Mkdir(m.path("r9"), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(m.path("r9/writing.tmp"))
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		defer f.Close()
		if _, err := f.WriteString("before the rename, "); err != nil {
			t.Fatalf("write: %v", err)
		}
		if err := os.Rename(m.path("r9/writing.tmp"), m.path("r9/final.txt")); err != nil {
			t.Fatalf("rename while open: %v", err)
		}
		if _, err := f.WriteString("after it"); err != nil {
			t.Fatalf("write after the rename: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close after the rename: %v", err)
		}
		ws.wantKeys(t, "r9/", "r9/", "r9/final.txt")
		ws.wantObject(t, "r9/final.txt", []byte("before the rename, after it"))
	})

	t.Run("file unlinked while open for writing", func(t *testing.T) {
		if err := os.Mkdir(m.path("r10"), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(m.path("r10/doomed.txt"))
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		defer f.Close()
		if _, err := f.WriteString("never to be seen"); err != nil {
			t.Fatalf("write: %v", err)
		}
		if err := os.Remove(m.path("r10/doomed.txt")); err != nil {
			t.Fatalf("unlink while open: %v", err)
		}
		if _, err := f.WriteString(", really"); err != nil {
			t.Errorf("write after the unlink: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("close after the unlink: %v", err)
		}
		ws.wantKeys(t, "r10/", "r10/")
		wantGone(t, m.path("r10/doomed.txt"))
	})

	t.Run("rename of a missing file", func(t *testing.T) {
		wantErrno(t, "rename of a missing file", os.Rename(m.path("nope"), m.path("nope2")), syscall.ENOENT)
	})
}
