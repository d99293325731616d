package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// umask reads the process's umask without changing it (syscall.Umask
// would race with parallel tests).
func umask(t *testing.T) os.FileMode {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				t.Fatalf("umask %q: %v", v, err)
			}
			return os.FileMode(n)
		}
	}
	t.Fatal("no Umask line in /proc/self/status")
	return 0
}

// wantMeta checks s3fs's metadata keys on the object under rel; zero
// fields of want are not checked.
type metaWant struct {
	mode     uint32 // full st_mode, file type bits included
	mtime    int64  // Unix seconds
	uid, gid uint32
	owner    bool // check uid and gid
}

func (w *workspace) wantMeta(t *testing.T, rel string, want metaWant) {
	t.Helper()
	h := w.head(t, rel)
	if h == nil {
		t.Errorf("bucket: no object %s to hold the metadata", w.key(rel))
		return
	}
	if want.mode != 0 {
		if got, ok := metaUint(h, "mode"); !ok || uint32(got) != want.mode {
			t.Errorf("bucket: %s: user metadata mode=%q, want %d (0%o)", w.key(rel), h.Metadata["mode"], want.mode, want.mode)
		}
	}
	if want.mtime != 0 {
		if got, raw, ok := metaMtime(h); !ok || got != want.mtime {
			t.Errorf("bucket: %s: user metadata mtime=%q, want %d (decimal seconds, optional fraction)", w.key(rel), raw, want.mtime)
		}
	}
	if want.owner {
		uid, uok := metaUint(h, "uid")
		gid, gok := metaUint(h, "gid")
		if !uok || !gok || uint32(uid) != want.uid || uint32(gid) != want.gid {
			t.Errorf("bucket: %s: user metadata uid=%q gid=%q, want %d and %d", w.key(rel), h.Metadata["uid"], h.Metadata["gid"], want.uid, want.gid)
		}
	}
}

// statWant is what the mount must show for one path (zero fields are not
// checked).
type statWant struct {
	mode     os.FileMode // type and permission bits, as os.FileMode
	mtime    int64
	uid, gid uint32
	owner    bool
}

func wantStat(t *testing.T, path string, want statWant) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("mount: lstat %s: %v", path, err)
		return
	}
	if want.mode != 0 && fi.Mode() != want.mode {
		t.Errorf("mount: %s: mode %v, want %v", path, fi.Mode(), want.mode)
	}
	if want.mtime != 0 && fi.ModTime().Unix() != want.mtime {
		t.Errorf("mount: %s: mtime %s, want %s", path, fi.ModTime().UTC().Format(time.RFC3339Nano), time.Unix(want.mtime, 0).UTC().Format(time.RFC3339))
	}
	if want.owner {
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != want.uid || st.Gid != want.gid {
			t.Errorf("mount: %s: owner %d:%d, want %d:%d", path, st.Uid, st.Gid, want.uid, want.gid)
		}
	}
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	ws := newWorkspace(t)
	// As s3fs writes them.
	ws.putObject(t, "s3fs/file.csv", []byte("a,b\n"), map[string]string{"mode": "33184", "mtime": "1600000000", "uid": "1001", "gid": "1002"})
	ws.putObject(t, "s3fs/fraction.txt", []byte("x"), map[string]string{"mode": "33188", "mtime": "1600000000.75"})
	ws.putObject(t, "s3fs/private/", nil, map[string]string{"mode": "16832", "mtime": "1500000000"})
	ws.putObject(t, "s3fs/link", []byte("file.csv"), map[string]string{"mode": "41471", "mtime": "1600000000"})
	ws.putObject(t, "s3fs/plain.txt", []byte("no metadata"), nil)
	cacheDir := t.TempDir()
	m := mountWS(t, ws, mountOpts{cacheDir: cacheDir})
	isRoot := os.Getuid() == 0
	mask := umask(t)
	const past = 1000000000 // 2001-09-09T01:46:40Z

	t.Run("bucket written by s3fs", func(t *testing.T) {
		tests := []struct {
			rel  string
			want statWant
		}{
			{"s3fs/file.csv", statWant{mode: 0o640, mtime: 1600000000, uid: 1001, gid: 1002, owner: true}},
			{"s3fs/fraction.txt", statWant{mode: 0o644, mtime: 1600000000}},
			{"s3fs/private", statWant{mode: os.ModeDir | 0o700, mtime: 1500000000}},
			{"s3fs/link", statWant{mode: os.ModeSymlink | 0o777}},
			{"s3fs/plain.txt", statWant{mode: 0o644}},
		}
		for _, tt := range tests {
			wantStat(t, m.path(tt.rel), tt.want)
		}
		if got, err := os.Readlink(m.path("s3fs/link")); err != nil || got != "file.csv" {
			t.Errorf("mount: readlink s3fs/link: %q, %v; want \"file.csv\"", got, err)
		}
	})

	// Changes made through the mount, checked in the bucket now and
	// through a fresh mount at the end.
	writeFile(t, m.path("chmod.txt"), strings.NewReader("chmod"), 4096)
	writeFile(t, m.path("times.txt"), strings.NewReader("times"), 4096)
	writeFile(t, m.path("chown.txt"), strings.NewReader("chown"), 4096)
	writeFile(t, m.path("kept.txt"), strings.NewReader("kept"), 4096)
	if err := os.Mkdir(m.path("dir"), 0o755); err != nil {
		t.Fatalf("mkdir dir: %v", err)
	}
	checks := []struct {
		name   string
		change func(t *testing.T)
		rel    string // the path; its object has a trailing "/" for directories
		meta   metaWant
		stat   statWant
		root   bool
	}{
		{"chmod a file", func(t *testing.T) {
			if err := os.Chmod(m.path("chmod.txt"), 0o600); err != nil {
				t.Fatalf("chmod 600 chmod.txt: %v", err)
			}
		}, "chmod.txt", metaWant{mode: syscall.S_IFREG | 0o600}, statWant{mode: 0o600}, false},
		{"chmod a directory", func(t *testing.T) {
			if err := os.Chmod(m.path("dir"), 0o700); err != nil {
				t.Fatalf("chmod 700 dir: %v", err)
			}
		}, "dir", metaWant{mode: syscall.S_IFDIR | 0o700}, statWant{mode: os.ModeDir | 0o700}, false},
		{"create with a mode", func(t *testing.T) {
			f, err := os.OpenFile(m.path("created.txt"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
			if err != nil {
				t.Fatalf("create created.txt 0640: %v", err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("close created.txt: %v", err)
			}
		}, "created.txt", metaWant{mode: syscall.S_IFREG | uint32(0o640&^mask)}, statWant{mode: 0o640 &^ mask}, false},
		{"utimens", func(t *testing.T) {
			if err := os.Chtimes(m.path("times.txt"), time.Unix(past, 0), time.Unix(past, 0)); err != nil {
				t.Fatalf("utimens times.txt: %v", err)
			}
		}, "times.txt", metaWant{mtime: past}, statWant{mtime: past}, false},
		{"utimens of a directory", func(t *testing.T) {
			if err := os.Chtimes(m.path("dir"), time.Unix(past+7, 0), time.Unix(past+7, 0)); err != nil {
				t.Fatalf("utimens dir: %v", err)
			}
		}, "dir", metaWant{mtime: past + 7}, statWant{mtime: past + 7}, false},
		{"chown", func(t *testing.T) {
			if err := os.Chown(m.path("chown.txt"), 1234, 5678); err != nil {
				t.Fatalf("chown 1234:5678 chown.txt: %v", err)
			}
		}, "chown.txt", metaWant{uid: 1234, gid: 5678, owner: true}, statWant{uid: 1234, gid: 5678, owner: true}, true},
		{"mode and owner survive a rewrite", func(t *testing.T) {
			if err := os.Chmod(m.path("kept.txt"), 0o604); err != nil {
				t.Fatalf("chmod kept.txt: %v", err)
			}
			if isRoot {
				if err := os.Chown(m.path("kept.txt"), 4321, 8765); err != nil {
					t.Fatalf("chown kept.txt: %v", err)
				}
			}
			openAndDo(t, m.path("kept.txt"), os.O_WRONLY|os.O_APPEND, "append", func(f *os.File) error {
				_, err := f.WriteString(" and more")
				return err
			})
		}, "kept.txt", metaWant{mode: syscall.S_IFREG | 0o604, uid: 4321, gid: 8765, owner: isRoot}, statWant{mode: 0o604, uid: 4321, gid: 8765, owner: isRoot}, false},
	}
	objectOf := func(rel string) string {
		if rel == "dir" {
			return "dir/"
		}
		return rel
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.root && !isRoot {
				t.Skip("needs root")
			}
			c.change(t)
			ws.wantMeta(t, objectOf(c.rel), c.meta)
			wantStat(t, m.path(c.rel), c.stat)
		})
	}

	t.Run("cp -p and tar -p", func(t *testing.T) {
		requireTool(t, "tar")
		local := t.TempDir()
		if err := os.WriteFile(filepath.Join(local, "cp.txt"), []byte("cp -p"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(local, "tree"), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(local, "tree", "run.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		for i, p := range []string{"cp.txt", "tree/run.sh", "tree"} {
			mt := time.Unix(past+int64(100*(i+1)), 0)
			if err := os.Chtimes(filepath.Join(local, p), mt, mt); err != nil {
				t.Fatal(err)
			}
		}
		run(t, "/", "cp", "-p", filepath.Join(local, "cp.txt"), m.path("cp.txt"))
		run(t, "/", "tar", "-c", "-f", filepath.Join(local, "t.tar"), "-C", local, "tree")
		run(t, "/", "tar", "-x", "-p", "-f", filepath.Join(local, "t.tar"), "-C", m.path(""))
		ws.wantMeta(t, "cp.txt", metaWant{mode: syscall.S_IFREG | 0o600, mtime: past + 100})
		ws.wantMeta(t, "tree/run.sh", metaWant{mode: syscall.S_IFREG | 0o755, mtime: past + 200})
		ws.wantMeta(t, "tree/", metaWant{mode: syscall.S_IFDIR | 0o750, mtime: past + 300})
	})

	// Everything again from the bucket only.
	m = m.remount(t, mountOpts{cacheDir: cacheDir})
	t.Run("after a remount", func(t *testing.T) {
		for _, c := range checks {
			if c.root && !isRoot {
				continue
			}
			wantStat(t, m.path(c.rel), c.stat)
		}
		wantStat(t, m.path("cp.txt"), statWant{mode: 0o600, mtime: past + 100})
		wantStat(t, m.path("tree/run.sh"), statWant{mode: 0o755, mtime: past + 200})
		wantStat(t, m.path("tree"), statWant{mode: os.ModeDir | 0o750, mtime: past + 300})
	})
}

func TestSymlinks(t *testing.T) {
	t.Parallel()
	ws := newWorkspace(t)
	cacheDir := t.TempDir()
	m := mountWS(t, ws, mountOpts{cacheDir: cacheDir})
	writeFile(t, m.path("target.txt"), strings.NewReader("the target"), 4096)
	if err := os.Mkdir(m.path("sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	links := []struct{ rel, target string }{
		{"link", "target.txt"},
		{"sub/up", "../target.txt"},
		{"absolute", "/etc/hostname"},
		{"dangling", "does/not/exist"},
	}
	for _, l := range links {
		if err := os.Symlink(l.target, m.path(l.rel)); err != nil {
			t.Fatalf("symlink %s -> %s: %v", l.rel, l.target, err)
		}
	}
	check := func(t *testing.T, m *mount) {
		t.Helper()
		for _, l := range links {
			ws.wantObject(t, l.rel, []byte(l.target))
			if h := ws.head(t, l.rel); h != nil {
				if mode, ok := metaUint(h, "mode"); !ok || mode&syscall.S_IFMT != syscall.S_IFLNK {
					t.Errorf("bucket: %s: user metadata mode=%q, want S_IFLNK (0120000) in the type bits", ws.key(l.rel), h.Metadata["mode"])
				}
			}
			if got, err := os.Readlink(m.path(l.rel)); err != nil || got != l.target {
				t.Errorf("mount: readlink %s: %q, %v; want %q", l.rel, got, err, l.target)
			}
			if fi, err := os.Lstat(m.path(l.rel)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Errorf("mount: lstat %s: %v, want a symlink", l.rel, lstatMode(fi, err))
			}
		}
		for _, rel := range []string{"link", "sub/up"} {
			if got, err := os.ReadFile(m.path(rel)); err != nil || string(got) != "the target" {
				t.Errorf("mount: read through %s: %q, %v; want \"the target\"", rel, got, err)
			}
		}
	}
	t.Run("created", func(t *testing.T) { check(t, m) })

	t.Run("hard link", func(t *testing.T) {
		wantErrno(t, "link target.txt hard", os.Link(m.path("target.txt"), m.path("hard")), syscall.EPERM, syscall.ENOTSUP)
		ws.wantNoObject(t, "hard")
	})

	t.Run("rename and unlink", func(t *testing.T) {
		if err := os.Symlink("target.txt", m.path("moving")); err != nil {
			t.Fatalf("symlink moving: %v", err)
		}
		if err := os.Rename(m.path("moving"), m.path("moved")); err != nil {
			t.Fatalf("rename moving moved: %v", err)
		}
		if got, err := os.Readlink(m.path("moved")); err != nil || got != "target.txt" {
			t.Errorf("mount: readlink moved: %q, %v; want \"target.txt\"", got, err)
		}
		if h := ws.head(t, "moved"); h == nil {
			t.Errorf("bucket: no object %s after the rename", ws.key("moved"))
		} else if mode, ok := metaUint(h, "mode"); !ok || mode&syscall.S_IFMT != syscall.S_IFLNK {
			t.Errorf("bucket: %s after the rename: mode=%q, want S_IFLNK in the type bits", ws.key("moved"), h.Metadata["mode"])
		}
		if err := os.Remove(m.path("moved")); err != nil {
			t.Fatalf("unlink the symlink moved: %v", err)
		}
		ws.wantNoObject(t, "moved")
		ws.wantObject(t, "target.txt", []byte("the target"))
	})

	m = m.remount(t, mountOpts{cacheDir: cacheDir})
	t.Run("after a remount", func(t *testing.T) { check(t, m) })
}

func lstatMode(fi os.FileInfo, err error) string {
	if err != nil {
		return err.Error()
	}
	return fi.Mode().String()
}

// TestMountDefaults: objects without metadata take the mount's modes and
// owner; objects with s3fs metadata keep their own.
func TestMountDefaults(t *testing.T) {
	t.Parallel()
	ws := newWorkspace(t)
	ws.putObject(t, "plain.txt", []byte("plain"), nil)
	ws.putObject(t, "implicit/inner.txt", []byte("inner"), nil)
	ws.putObject(t, "marker/", nil, nil)
	ws.putObject(t, "s3fs.txt", []byte("own"), map[string]string{"mode": "33188", "mtime": "1600000000", "uid": "1001", "gid": "1002"})
	m := mountWS(t, ws, mountOpts{extra: []string{"--file-mode", "0640", "--dir-mode", "0750", "--uid", "4242", "--gid", "4343"}})
	wantStat(t, m.path("plain.txt"), statWant{mode: 0o640, uid: 4242, gid: 4343, owner: true})
	wantStat(t, m.path("implicit"), statWant{mode: os.ModeDir | 0o750, uid: 4242, gid: 4343, owner: true})
	wantStat(t, m.path("marker"), statWant{mode: os.ModeDir | 0o750, uid: 4242, gid: 4343, owner: true})
	wantStat(t, m.path("s3fs.txt"), statWant{mode: 0o644, mtime: 1600000000, uid: 1001, gid: 1002, owner: true})
}
