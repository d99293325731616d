package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"mount-ws/bucket"
	"mount-ws/fs"
	"mount-ws/internal/fusetest"
	"mount-ws/internal/wsstack"
)

// Stored metadata (s3fs keys) is read only when a program looks at the
// attributes: walking a tree by its directory entries (find, os.walk)
// sends no HEAD for the files in it, and stat-ing a file then shows its
// stored mode, mtime and link-ness, even for a link the kernel first saw
// as a file.
func TestMetadataReadWhenStatted(t *testing.T) {
	b, put := workspace(t)
	putMeta := putWithMetadata(t, "testmetadatareadwhenstatted")
	putMeta("tree/d1/private.txt", "secret", map[string]string{"mode": "33152", "mtime": "1700000000"}) // 0100600
	putMeta("tree/d1/link", "private.txt", map[string]string{"mode": "41471"})                          // 0120777
	put("tree/d1/plain.txt", []byte("plain"))
	put("tree/d2/other.txt", []byte("other"))
	// A file beside the subdirectories: the kernel's look at d1 and d2
	// reads their markers, and must not read this file's metadata too.
	put("tree/top.txt", []byte("top"))

	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	path := func(p string) string { return filepath.Join(mnt, p) }

	stack.S3.ResetCounts()
	var walk func(dir string) int
	walk = func(dir string) int {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("readdir %s: %v", dir, err)
		}
		n := len(ents)
		for _, e := range ents {
			if e.IsDir() {
				n += walk(filepath.Join(dir, e.Name()))
			}
		}
		return n
	}
	if n := walk(path("tree")); n != 7 {
		t.Errorf("walk found %d entries, want 7", n)
	}
	// Directories are checked for markers: the kernel checks a
	// directory's mode before it enters it. That is the lookup of tree
	// (a HEAD of the object "tree" and of the marker "tree/") and one
	// batch for the markers of d1 and d2. The four files are not.
	if heads := stack.S3.Counts()[wsstack.OpHead]; heads > 4 {
		t.Errorf("walking the tree sent %d HEADs, want at most 4 (2 for tree, 1 per subdirectory)", heads)
	}

	var st syscall.Stat_t
	if err := syscall.Lstat(path("tree/d1/private.txt"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != 0o100600 || st.Mtim.Sec != 1700000000 {
		t.Errorf("private.txt: mode %o mtime %d, want 100600 and 1700000000", st.Mode, st.Mtim.Sec)
	}
	if err := syscall.Lstat(path("tree/d1/plain.txt"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != 0o100644 || time.Since(time.Unix(st.Mtim.Sec, 0)) > time.Hour {
		t.Errorf("plain.txt: mode %o mtime %d, want the defaults (100644, its upload time)", st.Mode, st.Mtim.Sec)
	}
	fi, err := os.Lstat(path("tree/d1/link"))
	if err != nil {
		t.Fatalf("lstat link: %v", err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("link: mode %v, want a symbolic link", fi.Mode())
	}
	if target, err := os.Readlink(path("tree/d1/link")); err != nil || target != "private.txt" {
		t.Errorf("readlink: %q %v, want private.txt", target, err)
	}
	if got, err := os.ReadFile(path("tree/d1/link")); err != nil || string(got) != "secret" {
		t.Errorf("read through link: %q %v", got, err)
	}
}

// Mode and times set on a file open for writing (tar, cp -p and rsync set
// them just before close) are stored with its content, in one PUT; set
// after close, by path, they are stored at once.
func TestMetadataOfOpenFileSavedWithContent(t *testing.T) {
	b, _ := workspace(t)
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	path := filepath.Join(mnt, "f.txt")

	stack.S3.ResetCounts()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("content"); err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(1600000000, 0)
	if err := f.Chmod(0o640); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Futimes(int(f.Fd()), []syscall.Timeval{{Sec: mtime.Unix()}, {Sec: mtime.Unix()}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	counts := stack.S3.Counts()
	if counts[wsstack.OpPut] != 1 || counts[wsstack.OpCopy] != 0 {
		t.Errorf("create, write, chmod, utimes, close: %d PUTs and %d COPYs, want 1 and 0", counts[wsstack.OpPut], counts[wsstack.OpCopy])
	}
	o, err := b.Head(context.Background(), "f.txt")
	if err != nil {
		t.Fatal(err)
	}
	if o.Metadata["mode"] != "33184" || o.Metadata["mtime"] != "1600000000" { // 0100640
		t.Errorf("stored metadata %v, want mode 33184 and mtime 1600000000", o.Metadata)
	}

	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if o, err = b.Head(context.Background(), "f.txt"); err != nil || o.Metadata["mode"] != "33152" {
		t.Errorf("after chmod by path: metadata %v (%v), want mode 33152", o.Metadata, err)
	}
}

// Overwriting a file with O_TRUNC downloads none of the old content (the
// kernel opens, then truncates), and the new content is uploaded while it
// is written; opening without O_TRUNC and writing in the middle fetches
// the old bytes and keeps them around the write.
func TestOverwriteFetchesOnlyWhatItKeeps(t *testing.T) {
	b, put := workspace(t)
	old := bytes.Repeat([]byte("old!"), 5<<20) // 20 MiB: more than one part
	put("big.bin", old)
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	path := filepath.Join(mnt, "big.bin")

	stack.S3.ResetCounts()
	fresh := bytes.Repeat([]byte("new"), 7<<20)
	if err := os.WriteFile(path, fresh, 0o644); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	counts := stack.S3.Counts()
	if counts[wsstack.OpGet] != 0 {
		t.Errorf("O_TRUNC overwrite sent %d GETs, want 0", counts[wsstack.OpGet])
	}
	if counts[wsstack.OpUploadPart] < 2 || counts[wsstack.OpPut] != 0 {
		t.Errorf("O_TRUNC overwrite: %d parts and %d PUTs, want a multipart upload", counts[wsstack.OpUploadPart], counts[wsstack.OpPut])
	}
	if got := readObject(t, b, "big.bin"); !bytes.Equal(got, fresh) {
		t.Fatalf("after overwrite: %d bytes, want the %d written", len(got), len(fresh))
	}

	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("MIDDLE"), 1000); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	want := append([]byte{}, fresh...)
	copy(want[1000:], "MIDDLE")
	if got := readObject(t, b, "big.bin"); !bytes.Equal(got, want) {
		t.Errorf("after a write in the middle: content differs (%d bytes, want %d)", len(got), len(want))
	}
}

func readObject(t *testing.T, b *bucket.Bucket, key string) []byte {
	t.Helper()
	body, err := b.Get(context.Background(), key, 0, -1, "")
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer body.Close()
	got, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return got
}

// A link that the kernel first saw in a listing (typed as a file, since a
// listing carries no metadata) is still followed when a program opens,
// appends to or chmods it by name without a stat first.
func TestLinkFromListingIsFollowed(t *testing.T) {
	b, _ := workspace(t)
	putRaw := putWithMetadata(t, "testlinkfromlistingisfollowed")
	putRaw("d/target.txt", "secret\n", nil)
	putRaw("d/link", "target.txt", map[string]string{"mode": "41471"}) // 0120777
	fresh := func() string {
		mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
		if _, err := os.ReadDir(filepath.Join(mnt, "d")); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(mnt, "d", "link")
	}

	if got, err := os.ReadFile(fresh()); err != nil || string(got) != "secret\n" {
		t.Errorf("read through the link after a listing: %q %v, want the target's content", got, err)
	}

	f, err := os.OpenFile(fresh(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("open the link for appending: %v", err)
	}
	if _, err := f.WriteString("more\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := readObject(t, b, "d/target.txt"); string(got) != "secret\nmore\n" {
		t.Errorf("target after appending through the link: %q", got)
	}
	if got := readObject(t, b, "d/link"); string(got) != "target.txt" {
		t.Errorf("link object after appending through it: %q, want it unchanged", got)
	}

	if err := os.Chmod(fresh(), 0o600); err != nil {
		t.Fatalf("chmod through the link: %v", err)
	}
	o, err := b.Head(context.Background(), "d/link")
	if err != nil || o.Metadata["mode"] != "41471" {
		t.Errorf("link's metadata after chmod through it: %v %v, want it still a link", o.Metadata, err)
	}
	// The mode went to the target, stored as s3fs stores it (decimal
	// S_IFREG|0600 = 33152), and stat through the link shows it.
	o, err = b.Head(context.Background(), "d/target.txt")
	if err != nil || o.Metadata["mode"] != "33152" {
		t.Errorf("target's metadata after chmod through the link: %v %v, want mode 33152 (S_IFREG|0600)", o.Metadata, err)
	}
	if fi, err := os.Stat(fresh()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stat through the link after chmod: %v %v, want 0600", fi.Mode(), err)
	}
}

// A file opened for appending and then renamed (log rotation) keeps its
// content: what it had not fetched yet is fetched before the object moves.
func TestAppendAfterRenameKeepsContent(t *testing.T) {
	b, put := workspace(t)
	put("app.log", []byte("line 1\n"))
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	f, err := os.OpenFile(filepath.Join(mnt, "app.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Rename(filepath.Join(mnt, "app.log"), filepath.Join(mnt, "app.log.1")); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if _, err := f.WriteString("line 2\n"); err != nil {
		t.Fatalf("write after rename: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got := readObject(t, b, "app.log.1"); string(got) != "line 1\nline 2\n" {
		t.Errorf("renamed file: %q, want both lines", got)
	}
}

// putWithMetadata returns a function that writes an object with user
// metadata into workspace fs/ws with the root account, as s3fs or another
// client would have.
func putWithMetadata(t *testing.T, ws string) func(key, body string, md map[string]string) {
	c := mintCreds(t, "fs", ws)
	return func(key, body string, md map[string]string) {
		t.Helper()
		_, err := stack.RootClient().PutObject(context.Background(), &s3.PutObjectInput{
			Bucket: aws.String(c.Bucket), Key: aws.String(c.Prefix + key),
			Body: bytes.NewReader([]byte(body)), Metadata: md,
		})
		if err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
}

// TestOneFileCostsOneHead: reading one file of a listed directory costs
// one HEAD, not one per entry; a program that stats a second entry (ls -l)
// gets the rest in one batch.
func TestOneFileCostsOneHead(t *testing.T) {
	b, put := workspace(t)
	const n = 200
	for i := range n {
		put(fmt.Sprintf("many/f%03d", i), []byte(fmt.Sprintf("file %d\n", i)))
	}
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	dir := filepath.Join(mnt, "many")
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != n {
		t.Fatalf("readdir: %d entries, %v", len(ents), err)
	}
	stack.S3.ResetCounts()
	if got, err := os.ReadFile(filepath.Join(dir, "f042")); err != nil || string(got) != "file 42\n" {
		t.Fatalf("read f042: %q %v", got, err)
	}
	c := stack.S3.Counts()
	total := uint64(0)
	for _, v := range c {
		total += v
	}
	if c[wsstack.OpHead] > 1 || total > 3 {
		t.Errorf("reading one file of a listed %d-entry directory sent %v; want at most one HEAD and 3 requests", n, c)
	}

	stack.S3.ResetCounts()
	for i := range n {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(dir, fmt.Sprintf("f%03d", i)), &st); err != nil {
			t.Fatal(err)
		}
	}
	// ls -l: the second entry asked for starts one batch for the rest.
	if heads := stack.S3.Counts()[wsstack.OpHead]; heads > n {
		t.Errorf("stat of every entry sent %d HEADs, want at most %d (one each, in a batch)", heads, n)
	}
}

// TestLookupCosts: what the first lookup of a name costs on a fresh mount:
// one LIST of the keys that begin with its key, then a HEAD of what it
// found, or for a small file a GET that brings its bytes for the read
// that follows (cat costs no more than stat). A directory's marker is read
// only when there is one (the LIST shows it); a directory written by
// another tool has none. What the LIST shows below a directory answers
// the next lookup of a path for free.
func TestLookupCosts(t *testing.T) {
	b, put := workspace(t)
	put("plain/x", []byte("x\n"))
	put("marked/", nil)
	put("marked/x", []byte("x\n"))
	put("f", []byte("f\n"))
	put("deep/a/b/x", []byte("x\n"))
	put("big", make([]byte, 200<<10))
	for _, tc := range []struct {
		path      string
		read      bool
		heads     uint64
		gets      uint64
		total     uint64 // HEAD, LIST and GET
		wantIsDir bool
	}{
		{path: "plain", heads: 0, total: 1, wantIsDir: true},
		{path: "marked", heads: 1, total: 2, wantIsDir: true},
		{path: "f", gets: 1, total: 2}, // LIST, GET of f
		{path: "big", heads: 1, total: 2},
		{path: "nothing", heads: 0, total: 1},
		{path: "plain/x", read: true, gets: 1, total: 2}, // cat: LIST, GET of x at lookup, read from it
		{path: "deep/a/b/x", read: true, gets: 1, total: 2},
		{path: "big", read: true, heads: 1, gets: 1, total: 3},
	} {
		mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
		stack.S3.ResetCounts()
		p := filepath.Join(mnt, tc.path)
		var err error
		var isDir bool
		var got []byte
		if tc.read {
			got, err = os.ReadFile(p)
		} else {
			var fi os.FileInfo
			fi, err = os.Lstat(p)
			isDir = err == nil && fi.IsDir()
		}
		if tc.path == "nothing" {
			if !errors.Is(err, iofs.ErrNotExist) {
				t.Errorf("%s: %v, want ENOENT", tc.path, err)
			}
		} else if err != nil || isDir != tc.wantIsDir {
			t.Errorf("%s: dir %v, %v; want dir %v", tc.path, isDir, err, tc.wantIsDir)
		}
		c := stack.S3.Counts()
		total := uint64(0)
		for _, v := range c {
			total += v
		}
		if c[wsstack.OpHead] != tc.heads || c[wsstack.OpGet] != tc.gets || total != tc.total {
			t.Errorf("first lookup of %s (read %v) sent %v; want %d HEADs, %d GETs and %d requests", tc.path, tc.read, c, tc.heads, tc.gets, tc.total)
		}
		if tc.read && err == nil {
			if want := readObject(t, b, tc.path); !bytes.Equal(got, want) {
				t.Errorf("cat %s: %d bytes, want the object's %d", tc.path, len(got), len(want))
			}
		}
	}
	// readlink of a link no listing showed: its lookup's GET brought the
	// target along.
	putWithMetadata(t, "testlookupcosts")("ln", "f", map[string]string{"mode": "41471"}) // 0120777
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	stack.S3.ResetCounts()
	if target, err := os.Readlink(filepath.Join(mnt, "ln")); err != nil || target != "f" {
		t.Errorf("readlink ln: %q, %v; want f", target, err)
	}
	if c := stack.S3.Counts(); c[wsstack.OpGet] != 1 || c[wsstack.OpHead] != 0 || c[wsstack.OpList] != 1 {
		t.Errorf("readlink of a link on a fresh mount sent %v; want one LIST and one GET", c)
	}
}

// TestLearnedEntriesStayTrue: what a lookup's LIST showed of the
// directories below (see TestLookupCosts) never brings back a name removed
// since, through the mount or by another program, nor hides one created
// here.
func TestLearnedEntriesStayTrue(t *testing.T) {
	b, put := workspace(t)
	for _, k := range []string{"t/d/a", "t/d/b", "t/d/c"} {
		put(k, []byte(k))
	}
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	if _, err := os.Stat(filepath.Join(mnt, "t")); err != nil {
		t.Fatal(err) // learns t/d and its three files
	}
	if err := b.Delete(t.Context(), "t/d/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "t/d/b")); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("a file deleted by another program after it was learned: %v, want ENOENT", err)
	}
	if err := os.Remove(filepath.Join(mnt, "t/d/a")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "t/d/a")); !errors.Is(err, iofs.ErrNotExist) {
		t.Errorf("a file removed here after it was learned: %v, want ENOENT", err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "t/d/new"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	stack.S3.ResetCounts()
	got, err := os.ReadFile(filepath.Join(mnt, "t/d/c"))
	if err != nil || string(got) != "t/d/c" {
		t.Fatalf("read t/d/c: %q, %v", got, err)
	}
	if c := stack.S3.Counts(); c[wsstack.OpList] != 0 || c[wsstack.OpHead]+c[wsstack.OpGet] != 1 {
		t.Errorf("reading a learned file sent %v; want one GET (its lookup's, which the read uses) and no LIST", c)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "t/d/new")); err != nil || string(got) != "new" {
		t.Errorf("file created here: %q, %v", got, err)
	}
}

// TestLookupPageSeedsListings: the page of keys a lookup read is the
// start of the listings of the directories it reached into: a directory
// it held whole is listed with no request, a larger one from where the
// page stopped (one LIST fewer); a change made here since drops it.
func TestLookupPageSeedsListings(t *testing.T) {
	b, put := workspaceWith(t, bucket.Config{ListMaxKeys: 5})
	for _, k := range []string{"s/a/1", "s/a/2", "s/b/1", "s/b/2", "s/b/3", "s/b/4"} {
		put(k, []byte(k))
	}
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	if _, err := os.Stat(filepath.Join(mnt, "s")); err != nil {
		t.Fatal(err) // one page of 5 keys: s/a whole, s/b up to s/b/3
	}
	list := func(dir string) ([]string, map[wsstack.Op]uint64) {
		t.Helper()
		stack.S3.ResetCounts()
		des, err := os.ReadDir(filepath.Join(mnt, dir))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		return names, stack.S3.Counts()
	}
	if names, c := list("s/a"); fmt.Sprint(names) != "[1 2]" || c[wsstack.OpList] != 0 {
		t.Errorf("s/a: %v with %v; want [1 2] and no LIST", names, c)
	}
	if names, c := list("s/b"); fmt.Sprint(names) != "[1 2 3 4]" || c[wsstack.OpList] != 1 {
		t.Errorf("s/b: %v with %v; want [1 2 3 4] and one LIST (after s/b/3)", names, c)
	}

	// A removal here after the page: the seed goes, the listing asks S3.
	put("u/d/1", []byte("1"))
	put("u/d/2", []byte("2"))
	if _, err := os.Stat(filepath.Join(mnt, "u")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(mnt, "u/d/1")); err != nil {
		t.Fatal(err)
	}
	if names, _ := list("u/d"); fmt.Sprint(names) != "[2]" {
		t.Errorf("u/d after removing 1: %v, want [2]", names)
	}
}
