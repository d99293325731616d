package fs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"mount-ws/bucket/buckettest"
	"mount-ws/fs"
	"mount-ws/internal/fusetest"
)

// TestMemoryPerEntry: what a name costs the mount once `ls -l` has seen it
// (the listing's entry, the node the lookup made, go-fuse's inode), as
// README states it. The heap is measured after a small directory was
// listed the same way, so that what any mount holds is not counted.
// MEMORY_ENTRIES=1000000 runs it by hand at another size.
func TestMemoryPerEntry(t *testing.T) {
	n := 50_000
	if v, err := strconv.Atoi(os.Getenv("MEMORY_ENTRIES")); err == nil && v > 0 {
		n = v
	}
	b, put := buckettest.NewFake(t)
	for i := range n {
		put(fmt.Sprintf("data/part-%07d.parquet", i), nil)
	}
	for i := range 100 {
		put(fmt.Sprintf("warm/part-%07d.parquet", i), nil)
	}
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	lsl := func(dir string) int {
		ents, err := os.ReadDir(filepath.Join(mnt, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if _, err := os.Lstat(filepath.Join(mnt, dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
		return len(ents)
	}
	var before, after runtime.MemStats
	lsl("warm")
	runtime.GC()
	runtime.ReadMemStats(&before)
	if got := lsl("data"); got != n {
		t.Fatalf("ls -l listed %d entries, want %d", got, n)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(n)
	t.Logf("%d entries: %d bytes each after ls -l (heap %d MiB → %d MiB)", n, per, before.HeapAlloc>>20, after.HeapAlloc>>20)
	if per > 800 {
		t.Errorf("an entry costs %d bytes after ls -l, want at most 800 (README: about 640)", per)
	}
}

// A name that was only listed, looked up or stat'ed costs its node no
// activity (the part of a file that opens, changes and removals need):
// `ls -l` of a big directory must not make one per name. An open does.
func TestListedNamesStayIdle(t *testing.T) {
	b, put := buckettest.NewFake(t)
	for _, name := range []string{"a.csv", "b.csv", "c.csv"} {
		put("data/"+name, []byte("x,y\n"))
	}
	f := fs.New(b, fs.Options{})
	mnt := fusetest.Mount(t, f)
	ents, err := os.ReadDir(filepath.Join(mnt, "data"))
	if err != nil || len(ents) != 3 {
		t.Fatalf("ls: %d entries, %v; want 3", len(ents), err)
	}
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(mnt, "data", e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "data", "b.csv")); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"a.csv": false, "b.csv": true, "c.csv": false} {
		active, known := f.Active("data/" + name)
		if !known {
			t.Fatalf("no node for data/%s after ls -l", name)
		}
		if active != want {
			t.Errorf("data/%s has an activity: %v, want %v (only the file read has one)", name, active, want)
		}
	}
}
