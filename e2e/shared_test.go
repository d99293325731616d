package e2e

import (
	"bytes"
	"context"
	"errors"
	"mount-ws/internal/wsstack"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"
)

// putTyped writes an object as another program would, with user metadata
// and a Content-Type.
func (w *workspace) putTyped(t *testing.T, rel string, body []byte, contentType string, meta map[string]string) {
	t.Helper()
	_, err := env.stack.RootClient().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &env.bucket, Key: aws.String(w.key(rel)), Body: bytes.NewReader(body),
		ContentType: aws.String(contentType), Metadata: meta,
	})
	if err != nil {
		t.Fatalf("SDK PUT %s: %v", w.key(rel), err)
	}
}

// TestOutsideOverwrite checks that a file replaced through S3 while the
// mount caches it is read anew by the next open, at once, with its new
// size, while a handle opened before keeps its version or fails ESTALE.
func TestOutsideOverwrite(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	w.putObject(t, "data.csv", []byte("v1\n"), nil)
	m := mountWS(t, w, mountOpts{})
	if got, err := os.ReadFile(m.path("data.csv")); err != nil || string(got) != "v1\n" {
		t.Fatalf("first read: %q, %v", got, err)
	}
	old, err := os.Open(m.path("data.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	for i, body := range []string{"version two, longer\n", "v3\n"} {
		w.putObject(t, "data.csv", []byte(body), nil)
		got, err := os.ReadFile(m.path("data.csv"))
		if err != nil || string(got) != body {
			t.Errorf("read %d after an outside overwrite: %q, %v; want %q at once", i+2, got, err, body)
		}
		fi, err := os.Stat(m.path("data.csv"))
		if err != nil || fi.Size() != int64(len(body)) {
			t.Errorf("stat %d after an outside overwrite and a read: %v, %v; want size %d", i+2, fi, err, len(body))
		}
	}
	buf := make([]byte, 64)
	n, err := old.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, syscall.ESTALE) && n != 3 {
		t.Errorf("handle opened before the overwrite: %q, %v; want its own version or ESTALE", buf[:n], err)
	}

	// The first open of a file known only from a listing sends no HEAD;
	// its first GET finds the change and reads the new version, longer
	// than the listing said, in full.
	w.putObject(t, "listed.csv", []byte("short\n"), nil)
	if _, err := os.ReadDir(m.dir); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(m.path("listed.csv")); err != nil || fi.Size() != 6 {
		t.Fatalf("listed.csv: %v, %v", fi, err)
	}
	long := strings.Repeat("a much longer second version\n", 5000)
	w.putObject(t, "listed.csv", []byte(long), nil)
	if got, err := os.ReadFile(m.path("listed.csv")); err != nil || string(got) != long {
		t.Errorf("first open after an outside overwrite: %d bytes, %v; want the %d of the new version", len(got), err, len(long))
	}
}

// TestForeignMetadataKept checks that what other programs store with an
// object survives changes made through the mount: chmod keeps every
// foreign x-amz-meta-* key and the Content-Type; rewriting the content
// keeps them too, except what described the old bytes; new objects get a
// Content-Type from their extension.
func TestForeignMetadataKept(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	// Another program's keys, and an rclone-style mtime (no mode).
	foreign := map[string]string{"pipeline": "etl-7", "md5chksum": "CY9rzUYh03PK3k6DJie09g=="}
	w.putTyped(t, "sales", []byte("a,b\n1,2\n"), "text/csv", map[string]string{
		"pipeline": "etl-7", "md5chksum": "CY9rzUYh03PK3k6DJie09g==", "mtime": "1600000000.5"})
	w.putTyped(t, "dir/", nil, "application/x-directory", map[string]string{"owner-team": "research"})
	m := mountWS(t, w, mountOpts{})

	if err := os.Chmod(m.path("sales"), 0o640); err != nil {
		t.Fatal(err)
	}
	h := w.head(t, "sales")
	if h == nil {
		t.Fatal("sales: gone after chmod")
	}
	for k, v := range foreign {
		if h.Metadata[k] != v {
			t.Errorf("after chmod: x-amz-meta-%s=%q, want %q kept", k, h.Metadata[k], v)
		}
	}
	if ct := aws.ToString(h.ContentType); ct != "text/csv" {
		t.Errorf("after chmod: Content-Type %q, want text/csv kept", ct)
	}
	w.wantMeta(t, "sales", metaWant{mode: syscall.S_IFREG | 0o640})
	fi, err := os.Stat(m.path("sales"))
	if err != nil || fi.ModTime().Unix() != 1600000000 {
		t.Errorf("after chmod: mtime %v, %v; want the stored one, 1600000000.5", fi.ModTime(), err)
	}

	f, err := os.OpenFile(m.path("sales"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	if _, err := f.WriteString("3,4\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	w.wantObject(t, "sales", []byte("a,b\n1,2\n3,4\n"))
	h = w.head(t, "sales")
	if h.Metadata["pipeline"] != "etl-7" || aws.ToString(h.ContentType) != "text/csv" {
		t.Errorf("after append: pipeline=%q Content-Type=%q, want etl-7 and text/csv kept", h.Metadata["pipeline"], aws.ToString(h.ContentType))
	}
	if v, ok := h.Metadata["md5chksum"]; ok {
		t.Errorf("after append: md5chksum=%q kept, but it describes the old content", v)
	}
	if v, ok := h.Metadata["mtime"]; ok {
		t.Errorf("after append: the old mtime %q kept; the object's own time is the new one", v)
	}
	w.wantMeta(t, "sales", metaWant{mode: syscall.S_IFREG | 0o640})
	m = m.remount(t, mountOpts{})
	if fi, err := os.Stat(m.path("sales")); err != nil || fi.ModTime().Before(before) {
		t.Errorf("after append and remount: mtime %v, %v; want the time of the append", fi.ModTime(), err)
	}

	if err := os.Chmod(m.path("dir"), 0o750); err != nil {
		t.Fatal(err)
	}
	if h := w.head(t, "dir/"); h == nil || h.Metadata["owner-team"] != "research" {
		t.Errorf("directory marker after chmod: no marker, or x-amz-meta-owner-team not kept")
	}

	for name, want := range map[string]string{"new.csv": "text/csv", "new.json": "application/json", "noext": "application/octet-stream"} {
		if err := os.WriteFile(m.path(name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if h := w.head(t, name); h == nil || !strings.HasPrefix(aws.ToString(h.ContentType), want) {
			t.Errorf("%s: no object, or Content-Type not %s", name, want)
		}
	}
	// A type from the extension follows a rename; one another program
	// chose stays.
	for from, to := range map[string]string{"new.csv": "renamed.json", "sales": "sales-renamed"} {
		if err := os.Rename(m.path(from), m.path(to)); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{"renamed.json": "application/json", "sales-renamed": "text/csv"} {
		if h := w.head(t, name); h == nil || !strings.HasPrefix(aws.ToString(h.ContentType), want) {
			t.Errorf("%s after a rename: no object, or Content-Type not %s", name, want)
		}
	}
}

// TestKeyTooLong checks that a path whose key would exceed S3's 1,024
// bytes fails with ENAMETOOLONG before any request and leaves nothing.
func TestKeyTooLong(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	m := mountWS(t, w, mountOpts{})
	dir := m.path(strings.Repeat("d", 240))
	for i := 0; i < 3; i++ {
		dir = filepath.Join(dir, strings.Repeat(string(rune('a'+i)), 240))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err) // 4 × 241 bytes plus the prefix: still under 1,024
	}
	long := filepath.Join(dir, strings.Repeat("f", 100)) // over 1,024 with the prefix
	if rel, _ := filepath.Rel(m.dir, long); len(w.key(rel)) <= 1024 {
		t.Fatalf("test key of %d bytes is not too long", len(w.key(rel)))
	}
	// "Before any request": the proxy sees no request whose key holds the
	// long name. (Not this mount's count of all its requests: on a loaded
	// machine the kernel's entries of the directories above may expire
	// meanwhile, and their lookups go to S3, rightly.)
	var sent atomic.Int64
	t.Cleanup(env.stack.S3.Inject(wsstack.S3Fault{KeyContains: w.key(strings.Repeat("d", 240)) + "/", Matched: func(_ wsstack.Op, key string) {
		if strings.Contains(key, strings.Repeat("f", 100)) {
			sent.Add(1)
		}
	}}))
	err := os.WriteFile(long, []byte("x"), 0o644)
	wantErrno(t, "create a file whose key is over 1,024 bytes", err, syscall.ENAMETOOLONG)
	wantErrno(t, "mkdir a directory whose key is over 1,024 bytes", os.Mkdir(long, 0o755), syscall.ENAMETOOLONG)
	wantErrno(t, "symlink whose key is over 1,024 bytes", os.Symlink("x", long), syscall.ENAMETOOLONG)
	if n := sent.Load(); n != 0 {
		t.Errorf("%d S3 requests for names refused as too long, want none", n)
	}
	names, err := readDirNames(dir)
	if err != nil || len(names) != 0 {
		t.Errorf("listing after the failures: %q, %v; want nothing", names, err)
	}
	_, err = os.Stat(long)
	wantErrno(t, "stat of the long name", err, syscall.ENAMETOOLONG, syscall.ENOENT)
}

// TestHonestAttributes checks times, link counts and the special files.
func TestHonestAttributes(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	m := mountWS(t, w, mountOpts{})
	p := m.path("f.txt")
	if err := os.WriteFile(p, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	stat := func(what string) unix.Stat_t {
		t.Helper()
		var s unix.Stat_t
		if err := unix.Lstat(p, &s); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return s
	}
	st = stat("after write")
	if st.Atim.Sec == 0 || st.Ctim.Sec == 0 {
		t.Errorf("after write: atime %d ctime %d, want real times", st.Atim.Sec, st.Ctim.Sec)
	}
	mtime := st.Mtim
	// ctime moves on chmod, mtime does not (not even by a second's
	// rounding: it never steps back). The wait is no synchronisation: the
	// chmod's copy must give the object a Last-Modified a second later, or
	// an mtime that followed it would look kept.
	time.Sleep(1100 * time.Millisecond)
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	st = stat("after chmod")
	if st.Mtim != mtime {
		t.Errorf("chmod changed mtime from %v to %v", mtime, st.Mtim)
	}
	if st.Ctim.Sec <= mtime.Sec {
		t.Errorf("chmod left ctime at %v, want it past mtime %v", st.Ctim, mtime)
	}
	// A renamed directory gets a new ctime and keeps its mtime.
	if err := os.Mkdir(m.path("dir1"), 0o755); err != nil {
		t.Fatal(err)
	}
	var d1, d2 unix.Stat_t
	if err := unix.Lstat(m.path("dir1"), &d1); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(m.path("dir1"), m.path("dir2")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(m.path("dir2"), &d2); err != nil {
		t.Fatal(err)
	}
	if d2.Mtim != d1.Mtim || d2.Ctim == d1.Ctim {
		t.Errorf("renamed directory: mtime %v → %v, ctime %v → %v; want mtime kept, ctime moved", d1.Mtim, d2.Mtim, d1.Ctim, d2.Ctim)
	}

	// touch -a stores the atime, and it survives a remount.
	// A leading zero in the nanoseconds: stored unpadded (".12345678") it
	// would read back as a different fraction.
	atime := time.Date(2020, 2, 2, 2, 2, 2, 12345678, time.UTC)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), {Nsec: unix.UTIME_OMIT}}, 0); err != nil {
		t.Fatal(err)
	}
	m = m.remount(t, mountOpts{})
	p = m.path("f.txt")
	st = stat("after remount")
	if st.Atim.Sec != atime.Unix() || st.Atim.Nsec != int64(atime.Nanosecond()) {
		t.Errorf("atime %v after touch -a and a remount, want %v", st.Atim, atime)
	}
	if st.Mtim != mtime {
		t.Errorf("mtime %v after touch -a and a remount, want %v", st.Mtim, mtime)
	}

	// An unlinked open file has no links left.
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	var fst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil || fst.Nlink != 0 {
		t.Errorf("fstat after unlink: nlink %d, %v; want 0", fst.Nlink, err)
	}
	f.Close()

	// Special files are stored as s3fs stores them and come back.
	if err := unix.Mkfifo(m.path("pipe"), 0o640); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	if err := unix.Mknod(m.path("plain"), unix.S_IFREG|0o600, 0); err != nil {
		t.Fatalf("mknod S_IFREG: %v", err)
	}
	if err := unix.Mknod(m.path("null"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatalf("mknod S_IFCHR as root: %v", err)
	}
	w.wantMeta(t, "pipe", metaWant{mode: unix.S_IFIFO | 0o640})
	m = m.remount(t, mountOpts{})
	for name, want := range map[string]uint32{"pipe": unix.S_IFIFO | 0o640, "plain": unix.S_IFREG | 0o600, "null": unix.S_IFCHR | 0o644} {
		var s unix.Stat_t
		if err := unix.Lstat(m.path(name), &s); err != nil || s.Mode != want {
			t.Errorf("%s after a remount: mode %o, %v; want %o", name, s.Mode, err, want)
		}
		if name == "null" && s.Rdev != unix.Mkdev(1, 3) {
			t.Errorf("null: rdev %x, want 1:3", s.Rdev)
		}
	}
	if err := os.Rename(m.path("pipe"), m.path("pipe2")); err != nil {
		t.Errorf("rename a FIFO: %v", err)
	}
	if fi, err := os.Lstat(m.path("pipe2")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("renamed FIFO: %v, %v", fi, err)
	}
	if err := os.Remove(m.path("pipe2")); err != nil {
		t.Errorf("remove a FIFO: %v", err)
	}

	// Mode 0 is mode 0 (FreeBSD's mv -f creates such files).
	z, err := os.OpenFile(m.path("zero"), os.O_CREATE|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(m.path("zero")); err != nil || fi.Mode().Perm() != 0 {
		t.Errorf("created with mode 0: %v, %v", fi.Mode(), err)
	}
	z.Close()

	// fallocate mode 0 extends the file with zeros.
	g, err := os.OpenFile(m.path("alloc"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteString("ab"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(g.Fd()), 0, 0, 4096); err != nil {
		t.Errorf("fallocate mode 0: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	w.wantObject(t, "alloc", append([]byte("ab"), make([]byte, 4094)...))
	wantErrno(t, "hard link", os.Link(m.path("alloc"), m.path("hard")), syscall.EOPNOTSUPP)
}

// TestXattrs checks user.* extended attributes, stored as s3fs stores
// them (metadata "xattr": percent-encoded JSON of base64 values).
func TestXattrs(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t)
	// As s3fs writes it: {"user.from":"czNmcw=="}, percent-encoded.
	w.putObject(t, "by-s3fs", []byte("x"), map[string]string{"xattr": "%7B%22user.from%22%3A%22czNmcw%3D%3D%22%7D"})
	m := mountWS(t, w, mountOpts{extra: []string{"--xattr"}})
	buf := make([]byte, 64)
	if n, err := unix.Getxattr(m.path("by-s3fs"), "user.from", buf); err != nil || string(buf[:n]) != "s3fs" {
		t.Errorf("getxattr of an s3fs-written attribute: %q, %v", buf[:n], err)
	}
	p := m.path("f")
	if err := os.WriteFile(p, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(m.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p, m.path("d")} {
		if err := unix.Setxattr(path, "user.origin", []byte("lab 3"), 0); err != nil {
			t.Fatalf("setxattr %s: %v", path, err)
		}
	}
	wantErrno(t, "setxattr XATTR_CREATE of an existing name", unix.Setxattr(p, "user.origin", []byte("x"), unix.XATTR_CREATE), syscall.EEXIST)
	wantErrno(t, "setxattr in the trusted namespace", unix.Setxattr(p, "trusted.x", []byte("x"), 0), syscall.EOPNOTSUPP)
	wantErrno(t, "setxattr of 4 KiB", unix.Setxattr(p, "user.big", make([]byte, 4096), 0), syscall.E2BIG)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(" more")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	m = m.remount(t, mountOpts{extra: []string{"--xattr"}})
	for _, path := range []string{m.path("f"), m.path("d")} {
		n, err := unix.Getxattr(path, "user.origin", buf)
		if err != nil || string(buf[:n]) != "lab 3" {
			t.Errorf("%s after an append and a remount: user.origin %q, %v", path, buf[:n], err)
		}
		if n, err := unix.Listxattr(path, buf); err != nil || string(buf[:n]) != "user.origin\x00" {
			t.Errorf("%s: listxattr %q, %v", path, buf[:n], err)
		}
	}
	if h := w.head(t, "f"); h == nil || h.Metadata["xattr"] == "" {
		t.Errorf("bucket: f has no xattr metadata")
	}
	if err := unix.Removexattr(m.path("f"), "user.origin"); err != nil {
		t.Fatal(err)
	}
	_, err = unix.Getxattr(m.path("f"), "user.origin", buf)
	wantErrno(t, "getxattr after removexattr", err, unix.ENODATA)
	if h := w.head(t, "f"); h == nil || h.Metadata["xattr"] != "" {
		t.Errorf("bucket: xattr metadata left after the last attribute was removed")
	}
}
