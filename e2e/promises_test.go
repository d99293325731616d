package e2e

import (
	"bytes"
	"os"
	"syscall"
	"testing"
	"time"

	"mount-ws/internal/wsstack"
)

// TestPageCacheKeptWhileUnchanged holds "a file's pages stay in the
// kernel's page cache across opens while its ETag is unchanged": a second
// read of an unchanged file sends no GET, and one replaced in the bucket
// is read anew.
func TestPageCacheKeptWhileUnchanged(t *testing.T) {
	ws := newWorkspace(t)
	data := bytes.Repeat([]byte("cached "), 64<<10)
	ws.putObject(t, "data.bin", data, nil)
	m := mountWS(t, ws, mountOpts{})
	gets := func() uint64 { return env.stack.S3.Counts()[wsstack.OpGet] }

	if got, err := os.ReadFile(m.path("data.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("first read: %v", err)
	}
	before := gets()
	if got, err := os.ReadFile(m.path("data.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("second read: %v", err)
	}
	if n := gets() - before; n != 0 {
		t.Errorf("re-reading an unchanged file sent %d GETs, want 0 (served from the page cache)", n)
	}

	changed := bytes.Repeat([]byte("CHANGED"), 64<<10)
	ws.putObject(t, "data.bin", changed, nil)
	if got, err := os.ReadFile(m.path("data.bin")); err != nil || !bytes.Equal(got, changed) {
		t.Errorf("read after the object was replaced: %d bytes, %v; want the new content", len(got), err)
	}
}

// TestDirectoryTimesFollowEntries holds "a directory's mtime and ctime move
// when entries are created, removed or renamed in it through this mount".
func TestDirectoryTimesFollowEntries(t *testing.T) {
	ws := newWorkspace(t)
	m := mountWS(t, ws, mountOpts{})
	dir := m.path("d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-24 * time.Hour).Truncate(time.Second)
	for _, step := range []struct {
		what string
		do   func() error
	}{
		{"create", func() error { return os.WriteFile(m.path("d/a.txt"), []byte("a"), 0o644) }},
		{"rename", func() error { return os.Rename(m.path("d/a.txt"), m.path("d/b.txt")) }},
		{"remove", func() error { return os.Remove(m.path("d/b.txt")) }},
	} {
		// Set the directory's times a day back, so that any move shows
		// without waiting for the clock.
		if err := os.Chtimes(dir, past, past); err != nil {
			t.Fatalf("%s: set the directory's times: %v", step.what, err)
		}
		// Chtimes itself moves ctime to now: the step must move it on.
		before, err := os.Stat(dir)
		if err != nil {
			t.Fatalf("%s: stat: %v", step.what, err)
		}
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.what, err)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatalf("%s: stat: %v", step.what, err)
		}
		if !fi.ModTime().After(past.Add(time.Hour)) {
			t.Errorf("%s in the directory left its mtime at %v, want now", step.what, fi.ModTime())
		}
		if c := ctime(fi); !c.After(ctime(before)) {
			t.Errorf("%s in the directory left its ctime at %v, want later", step.what, c)
		}
	}
}

// ctime is fi's status change time.
func ctime(fi os.FileInfo) time.Time {
	st := fi.Sys().(*syscall.Stat_t)
	return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
}

// TestNodeAnsweredOnlyFromItsObject holds "a node is only answered from
// the object it was made for": when another writer puts a symlink where a
// file was, the file's open descriptor answers ESTALE instead of the
// link's attributes, and a new lookup of the name finds the link.
func TestNodeAnsweredOnlyFromItsObject(t *testing.T) {
	ws := newWorkspace(t)
	ws.putObject(t, "thing", []byte("a regular file"), nil)
	m := mountWS(t, ws, mountOpts{extra: []string{"--metadata-ttl", "0"}})
	f, err := os.Open(m.path("thing"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("fstat before: %v, %v", fi, err)
	}
	// Another writer: the name now holds a symlink, as s3fs stores one.
	ws.putObject(t, "thing", []byte("target.txt"), map[string]string{"mode": "41471"})
	var st syscall.Stat_t
	err = syscall.Fstat(int(f.Fd()), &st)
	if err != syscall.ESTALE {
		t.Errorf("fstat of the open file after the name became a link: %v (mode %o), want ESTALE", err, st.Mode)
	}
	if fi, err := os.Lstat(m.path("thing")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("lstat of the name: %v, %v; want the symlink", fi, err)
	}
	if got, err := os.Readlink(m.path("thing")); err != nil || got != "target.txt" {
		t.Errorf("readlink: %q, %v; want target.txt", got, err)
	}
}

// TestLastUploadWins holds "writes by two machines to the same file are
// not merged: the last upload wins", with two mounts of one workspace
// standing for two machines: whichever closes last decides the object,
// whole, whatever the order of the opens and the sizes.
func TestLastUploadWins(t *testing.T) {
	ws := newWorkspace(t)
	ws.putObject(t, "shared.txt", []byte("the version both machines opened\n"), nil)
	a := mountWS(t, ws, mountOpts{})
	b := mountWS(t, ws, mountOpts{})
	long := bytes.Repeat([]byte("machine A wrote this, longer than B's\n"), 1000)
	short := []byte("machine B\n")
	open := func(m *mount) *os.File {
		f, err := os.OpenFile(m.path("shared.txt"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	write := func(f *os.File, data []byte) {
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(data, 0); err != nil {
			t.Fatal(err)
		}
	}
	fa, fb := open(a), open(b)
	write(fa, long)
	write(fb, short)
	// A, opened first, closes last: its upload wins, not merged with B's.
	if err := fb.Close(); err != nil {
		t.Fatal(err)
	}
	ws.wantObject(t, "shared.txt", short)
	if err := fa.Close(); err != nil {
		t.Fatal(err)
	}
	ws.wantObject(t, "shared.txt", long)
	// And the other way round, with the shorter content last: nothing of
	// the longer one is left past its end.
	fa, fb = open(a), open(b)
	write(fb, short)
	write(fa, long)
	if err := fa.Close(); err != nil {
		t.Fatal(err)
	}
	if err := fb.Close(); err != nil {
		t.Fatal(err)
	}
	ws.wantObject(t, "shared.txt", short)
	for _, m := range []*mount{a, b} {
		if got, err := os.ReadFile(m.path("shared.txt")); err != nil || !bytes.Equal(got, short) {
			t.Errorf("%s reads %d bytes (%v) after the last upload; want B's %d: %s", m.dir, len(got), err, len(short), diffBytes(got, short))
		}
	}
}
