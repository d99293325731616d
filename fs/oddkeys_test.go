package fs_test

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"mount-ws/bucket/buckettest"
	"mount-ws/fs"
	"mount-ws/internal/fusetest"
)

// Keys the gateway's posix backend cannot hold, through an in-memory S3
// server: the mount shows what it can and never crashes or hangs.
func TestOddKeys(t *testing.T) {
	b, put := buckettest.NewFake(t)
	long := strings.Repeat("L", 300)
	for _, k := range []string{
		"ok.txt",
		"a//b.txt",       // empty segment
		"x",              // a file ...
		"x/y.txt",        // ... and a directory of the same name
		"dir/" + long,    // name over 255 bytes
		long + "/in.txt", // directory name over 255 bytes
		"dots/./z.txt",   // "." segment
		"dots/../up.txt", // ".." segment
		"trail/",         // plain marker
		"sp ace/ü.txt",   // spaces and UTF-8 are fine
	} {
		put(k, []byte("data of "+k))
	}
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))

	var all []string
	err := filepath.Walk(mnt, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Errorf("walk %s: %v", p, err)
			return nil
		}
		rel, _ := filepath.Rel(mnt, p)
		if fi.IsDir() {
			rel += "/"
		}
		all = append(all, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(all)
	want := []string{"./", "a/", "dir/", "dots/", "ok.txt", "sp ace/", "sp ace/ü.txt", "trail/", "x/", "x/y.txt"}
	if strings.Join(all, "|") != strings.Join(want, "|") {
		t.Errorf("tree:\n got %q\nwant %q", all, want)
	}
	for path, content := range map[string]string{"x/y.txt": "data of x/y.txt", "sp ace/ü.txt": "data of sp ace/ü.txt"} {
		got, err := os.ReadFile(filepath.Join(mnt, path))
		if err != nil || string(got) != content {
			t.Errorf("read %s: %q %v", path, got, err)
		}
	}
	// Looking the odd names up directly (not through a listing) fails
	// cleanly too.
	for p, want := range map[string]syscall.Errno{"dir/" + long: syscall.ENAMETOOLONG, "a/b.txt": syscall.ENOENT} {
		if _, err := os.Stat(filepath.Join(mnt, p)); !errors.Is(err, want) {
			t.Errorf("stat %.20s…: %v, want %v", p, err, want)
		}
	}
}
