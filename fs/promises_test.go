package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mount-ws/bucket"
	"mount-ws/bucket/buckettest"
	"mount-ws/fs"
	"mount-ws/internal/fusetest"
	"mount-ws/internal/syncbuf"
	"mount-ws/internal/wsstack"
)

// Parts of README promises (docs/RELIABILITY.md rows W29, W30, V18, V21)
// that the broader tests left out.

// TestFallocateModes (W29): FALLOC_FL_KEEP_SIZE alone succeeds and changes
// nothing; punching holes and zeroing ranges answer EOPNOTSUPP.
func TestFallocateModes(t *testing.T) {
	b, _ := workspace(t)
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	f, err := os.Create(filepath.Join(mnt, "f.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("0123456789"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, 1<<20); err != nil {
		t.Errorf("fallocate KEEP_SIZE: %v, want success", err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != 10 {
		t.Errorf("size after fallocate KEEP_SIZE: %d (%v), want 10", fi.Size(), err)
	}
	for name, mode := range map[string]uint32{
		"PUNCH_HOLE":           unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE,
		"ZERO_RANGE":           unix.FALLOC_FL_ZERO_RANGE,
		"COLLAPSE_RANGE":       unix.FALLOC_FL_COLLAPSE_RANGE,
		"ZERO_RANGE|KEEP_SIZE": unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE,
	} {
		err := unix.Fallocate(int(f.Fd()), mode, 0, 4)
		if !errors.Is(err, syscall.EOPNOTSUPP) {
			t.Errorf("fallocate %s: %v, want EOPNOTSUPP", name, err)
		}
	}
}

// TestXattrsOffByDefault (W30): without Xattrs the kernel answers every
// extended-attribute call itself (ENOTSUP) and none reaches S3; with it,
// the kernel's own namespaces read as empty.
func TestXattrsOffByDefault(t *testing.T) {
	b, put := workspace(t)
	put("f.txt", []byte("x"))
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	p := filepath.Join(mnt, "f.txt")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	stack.S3.ResetCounts()
	if err := unix.Setxattr(p, "user.a", []byte("1"), 0); !errors.Is(err, syscall.ENOTSUP) {
		t.Errorf("setxattr with extended attributes off: %v, want ENOTSUP", err)
	}
	buf := make([]byte, 64)
	if _, err := unix.Getxattr(p, "user.a", buf); !errors.Is(err, syscall.ENOTSUP) {
		t.Errorf("getxattr with extended attributes off: %v, want ENOTSUP", err)
	}
	if c := stack.S3.Counts(); c[wsstack.OpCopy]+c[wsstack.OpPut]+c[wsstack.OpHead] != 0 {
		t.Errorf("extended-attribute calls sent %v to S3 with them off", c)
	}

	on := fusetest.MountWith(t, fs.New(b, fs.Options{}), fs.MountConfig{FsName: "mount-ws-test", Xattrs: true})
	for _, name := range []string{"security.selinux", "system.posix_acl_access"} {
		n, err := unix.Getxattr(filepath.Join(on, "f.txt"), name, buf)
		if err == nil && n != 0 {
			t.Errorf("getxattr %s with extended attributes on: %d bytes, want none", name, n)
		} else if err != nil && !errors.Is(err, unix.ENODATA) {
			t.Errorf("getxattr %s with extended attributes on: %v, want empty (ENODATA)", name, err)
		}
	}
}

// TestReadLeavesAtime (V18): reads do not update the stored atime, and
// send nothing but GETs.
func TestReadLeavesAtime(t *testing.T) {
	b, _ := workspace(t)
	putMeta := putWithMetadata(t, "testreadleavesatime")
	putMeta("f.txt", "content", map[string]string{"atime": "1600000000", "mtime": "1600000000"})
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	p := filepath.Join(mnt, "f.txt")
	var before, after unix.Stat_t
	if err := unix.Stat(p, &before); err != nil {
		t.Fatal(err)
	}
	stack.S3.ResetCounts()
	for range 3 {
		if _, err := os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Stat(p, &after); err != nil {
		t.Fatal(err)
	}
	if after.Atim != before.Atim || before.Atim.Sec != 1600000000 {
		t.Errorf("atime %v before and %v after three reads, want the stored 1600000000 both times", before.Atim, after.Atim)
	}
	c := stack.S3.Counts()
	if c[wsstack.OpPut]+c[wsstack.OpCopy] != 0 {
		t.Errorf("reads sent %v, want no write", c)
	}
}

// TestLinkCounts (V21): a directory has one link; a file replaced by a
// rename while open has none.
func TestLinkCounts(t *testing.T) {
	b, put := workspace(t)
	put("d/a.txt", []byte("a"))
	put("d/b.txt", []byte("b"))
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(mnt, "d"), &st); err != nil || st.Nlink != 1 {
		t.Errorf("directory: nlink %d (%v), want 1", st.Nlink, err)
	}
	f, err := os.Open(filepath.Join(mnt, "d/b.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Rename(filepath.Join(mnt, "d/a.txt"), filepath.Join(mnt, "d/b.txt")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Nlink != 0 {
		t.Errorf("file replaced by a rename while open: nlink %d (%v), want 0", st.Nlink, err)
	}
}

// TestDefaults holds the README's numbers for what fs.Options leaves
// zero: names found missing are remembered 1 s (V7), listings and
// attributes 10 s (V6); directories of up to 1,000 entries get their
// files' metadata read (V5); files are sent in 16 MiB parts, 8 at once,
// and up to one part with one PUT (W15).
func TestDefaults(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"negative TTL", int64(fs.DefaultNegativeTTL), int64(time.Second)},
		{"metadata TTL", int64(fs.DefaultMetadataTTL), int64(10 * time.Second)},
		{"metadata HEAD limit", fs.DefaultMetadataHeadLimit, 1000},
		{"part size", fs.DefaultPartSize, 16 << 20},
		{"upload concurrency", fs.DefaultUploadConcurrency, 8},
		{"staging limit", fs.DefaultCacheLimit, 10 << 30},
		{"read-ahead memory", fs.DefaultPrefetchMemory, 512 << 20},
	} {
		if c.got != c.want {
			t.Errorf("%s defaults to %d; the README says %d", c.name, c.got, c.want)
		}
	}
}

// TestCtimeMoves (V17): chown, touch and a file rename move ctime, from
// the one stored in the object (a day back) to now.
func TestCtimeMoves(t *testing.T) {
	b, _ := workspace(t)
	putMeta := putWithMetadata(t, "testctimemoves")
	const old = "1600000000"
	for _, name := range []string{"chown.txt", "touch.txt", "rename.txt"} {
		putMeta(name, "x", map[string]string{"ctime": old, "mtime": old})
	}
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	p := func(name string) string { return filepath.Join(mnt, name) }
	steps := map[string]func() error{
		"chown.txt":  func() error { return os.Chown(p("chown.txt"), 1234, 1234) },
		"touch.txt":  func() error { return os.Chtimes(p("touch.txt"), time.Unix(1700000000, 0), time.Unix(1700000000, 0)) },
		"rename.txt": func() error { return os.Rename(p("rename.txt"), p("renamed.txt")) },
	}
	for name, step := range steps {
		var st unix.Stat_t
		if err := unix.Stat(p(name), &st); err != nil || st.Ctim.Sec != 1600000000 {
			t.Fatalf("%s before: ctime %d (%v), want the stored %s", name, st.Ctim.Sec, err, old)
		}
		if err := step(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		after := name
		if name == "rename.txt" {
			after = "renamed.txt"
		}
		if err := unix.Stat(p(after), &st); err != nil {
			t.Fatal(err)
		}
		if time.Since(time.Unix(st.Ctim.Sec, 0)) > time.Hour {
			t.Errorf("%s: ctime %d after the change, want now", name, st.Ctim.Sec)
		}
	}
}

// TestSpecialFiles (W28): a socket is stored and listed like a FIFO, and
// chmod of a special file is stored.
func TestSpecialFiles(t *testing.T) {
	b, _ := workspace(t)
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	sock, fifo := filepath.Join(mnt, "s.sock"), filepath.Join(mnt, "p.fifo")
	if err := unix.Mknod(sock, unix.S_IFSOCK|0o644, 0); err != nil {
		t.Fatalf("mknod socket: %v", err)
	}
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(fifo, 0o600); err != nil {
		t.Fatalf("chmod of a FIFO: %v", err)
	}
	// A second mount reads what the bucket holds.
	other := fusetest.Mount(t, fs.New(b, fs.Options{}))
	for name, want := range map[string]uint32{"s.sock": unix.S_IFSOCK | 0o644, "p.fifo": unix.S_IFIFO | 0o600} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(other, name), &st); err != nil || st.Mode != want {
			t.Errorf("%s from the bucket: mode %o (%v), want %o", name, st.Mode, err, want)
		}
	}
	if err := os.Remove(filepath.Join(other, "s.sock")); err != nil {
		t.Errorf("remove the socket: %v", err)
	}
}

// TestSmallFileOnePut (W15): up to 16 MiB a file goes up with one PUT;
// one byte more and it is a multipart upload.
func TestSmallFileOnePut(t *testing.T) {
	b, _ := workspace(t)
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	for _, c := range []struct {
		size       int
		put, parts uint64
	}{{16 << 20, 1, 0}, {16<<20 + 1, 0, 2}} {
		stack.S3.ResetCounts()
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("f%d", c.size)), make([]byte, c.size), 0o644); err != nil {
			t.Fatal(err)
		}
		// What the mount chose to send: an attempt the SDK repeated (a
		// busy machine) is not another upload.
		n, r := stack.S3.Counts(), stack.S3.Retries()
		puts, parts := n[wsstack.OpPut]-r[wsstack.OpPut], n[wsstack.OpUploadPart]-r[wsstack.OpUploadPart]
		if puts != c.put || parts != c.parts {
			t.Errorf("writing %d bytes sent %d PUTs and %d parts, want %d and %d (all requests %v, of them retried %v)", c.size, puts, parts, c.put, c.parts, n, r)
		}
	}
}

// TestTruncateFetchesNothing (W12): truncating an existing file to zero
// downloads none of it; to a smaller size, only what the save sends of
// it (here the whole megabyte kept, one GET).
func TestTruncateFetchesNothing(t *testing.T) {
	b, put := workspace(t)
	put("a.bin", make([]byte, 3<<20))
	put("b.bin", make([]byte, 3<<20))
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	for _, name := range []string{"a.bin", "b.bin"} {
		if _, err := os.Stat(filepath.Join(mnt, name)); err != nil {
			t.Fatal(err)
		}
	}
	stack.S3.ResetCounts()
	if err := os.Truncate(filepath.Join(mnt, "a.bin"), 0); err != nil {
		t.Fatal(err)
	}
	if gets := stack.S3.Counts()[wsstack.OpGet]; gets != 0 {
		t.Errorf("truncating a file to zero by name sent %d GETs, want 0", gets)
	}
	if err := os.Truncate(filepath.Join(mnt, "b.bin"), 1<<20); err != nil {
		t.Fatal(err)
	}
	if gets := stack.S3.Counts()[wsstack.OpGet]; gets > 1 {
		t.Errorf("truncating two files by name sent %d GETs, want at most 1 (the megabyte kept)", gets)
	}
	for name, size := range map[string]int64{"a.bin": 0, "b.bin": 1 << 20} {
		if fi, err := os.Stat(filepath.Join(mnt, name)); err != nil || fi.Size() != size {
			t.Errorf("%s after truncate: %v, want %d bytes", name, err, size)
		}
	}
}

// mountLogged mounts b with a logger and returns the mount and a counter of
// log lines holding every one of the given strings.
func mountLogged(t *testing.T, b *bucket.Bucket, opts fs.Options) (string, func(subs ...string) int, func() string) {
	var log syncbuf.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
	mnt := fusetest.Mount(t, fs.New(b, opts))
	count := func(subs ...string) int {
		n := 0
		for _, l := range strings.Split(log.String(), "\n") {
			all := true
			for _, s := range subs {
				all = all && strings.Contains(l, s)
			}
			if all {
				n++
			}
		}
		return n
	}
	return mnt, count, log.String
}

// TestSkippedKeyLoggedOnce (V3): a key that cannot be a name is logged
// once, however often it is listed.
func TestSkippedKeyLoggedOnce(t *testing.T) {
	b, put := buckettest.NewFake(t)
	long := strings.Repeat("x", 300) // over the 255 bytes of a name
	put("d/ok.txt", []byte("fine"))
	put("d/"+long, []byte("no name"))
	mnt, count, log := mountLogged(t, b, fs.Options{MetadataTTL: -1}) // every readdir lists again
	for range 3 {
		if _, err := os.ReadDir(filepath.Join(mnt, "d")); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(`msg="key not shown"`, long); n != 1 {
		t.Errorf("a key with a 300-byte name listed 3 times was logged %d times, want once:\n%s", n, log())
	}
}

// TestErrorLoggedOnce (V26): an unexpected error is logged once per
// operation, path and errno, however often it recurs, with both named.
func TestErrorLoggedOnce(t *testing.T) {
	b, put := workspace(t)
	put("err.txt", []byte("unreadable"))
	mnt, count, log := mountLogged(t, b, fs.Options{})
	t.Cleanup(stack.S3.ClearFaults)
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpGet}, KeyContains: "testerrorloggedonce/err.txt", Status: 403})
	for range 3 {
		if _, err := os.ReadFile(filepath.Join(mnt, "err.txt")); !errors.Is(err, syscall.EACCES) {
			t.Fatalf("read of an object S3 refuses: %v, want EACCES", err)
		}
	}
	if n := count(`msg="operation failed"`, "op=read", "path=err.txt", "permission denied"); n != 1 {
		t.Errorf("a read refused 3 times was logged %d times with its operation and path, want once:\n%s", n, log())
	}
}

// TestLinkFromListingTruncatedByName (W27): a link first seen in a listing
// is followed by a truncation by name too, also in a directory too large
// for its files' metadata to be read (here, over a limit of 1 entry).
func TestLinkFromListingTruncatedByName(t *testing.T) {
	b, _ := workspace(t)
	putRaw := putWithMetadata(t, "testlinkfromlistingtruncatedbyname")
	for _, limit := range []int{0, 1} { // 0: the default limit
		dir := fmt.Sprintf("d%d", limit)
		putRaw(dir+"/target.txt", "0123456789\n", nil)
		putRaw(dir+"/link", "target.txt", map[string]string{"mode": "41471"}) // 0120777
		mnt := fusetest.Mount(t, fs.New(b, fs.Options{MetadataHeadLimit: limit}))
		if _, err := os.ReadDir(filepath.Join(mnt, dir)); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(filepath.Join(mnt, dir, "link"), 4); err != nil {
			t.Fatalf("%s: truncate through a link seen in a listing: %v", dir, err)
		}
		if got := readObject(t, b, dir+"/target.txt"); string(got) != "0123" {
			t.Errorf("%s: target after truncating through the link: %q, want \"0123\"", dir, got)
		}
		if got := readObject(t, b, dir+"/link"); string(got) != "target.txt" {
			t.Errorf("%s: link object after truncating through it: %q, want it unchanged", dir, got)
		}
	}
}

// inFlight holds every request of op on keys containing key in flight,
// and returns how many arrived and a release.
func inFlight(t *testing.T, op wsstack.Op, key string) (arrived *atomic.Int64, release func()) {
	hold := make(chan struct{})
	release = sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release)
	t.Cleanup(stack.S3.ClearFaults)
	arrived = new(atomic.Int64)
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{op}, KeyContains: key, Hold: hold,
		Matched: func(wsstack.Op, string) { arrived.Add(1) }})
	return arrived, release
}

// settle waits for a first arrival (a minute at most), then until n
// stops growing for a while, and returns it. The second wait is the
// scenario's (how long more requests could take to arrive), not a
// synchronisation: a slow machine can only make a test pass that should
// fail, never the reverse.
func settle(n *atomic.Int64) int64 {
	for deadline := time.Now().Add(time.Minute); n.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	last, still := n.Load(), 0
	for still < 10 { // 200 ms without a new arrival
		time.Sleep(20 * time.Millisecond)
		if now := n.Load(); now != last {
			last, still = now, 0
		} else {
			still++
		}
	}
	return last
}

// TestBatchesInParallel (V5, W15): a batch of metadata HEADs has at most
// 32 in flight, and a file's parts at most 8 (UploadConcurrency); both
// more than one.
func TestBatchesInParallel(t *testing.T) {
	b, put := workspace(t)
	for i := range 100 {
		put(fmt.Sprintf("many/f%03d", i), []byte("x"))
	}
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{PartSize: 5 << 20}))
	dir := filepath.Join(mnt, "many")
	if _, err := os.ReadDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "f000")); err != nil { // read alone
		t.Fatal(err)
	}
	heads, release := inFlight(t, wsstack.OpHead, "testbatchesinparallel/many/")
	done := make(chan error, 1)
	go func() { _, err := os.Stat(filepath.Join(dir, "f001")); done <- err }() // starts the batch
	if n := settle(heads); n > 32 || n < 2 {
		t.Errorf("%d metadata HEADs in flight at once, want 2 to 32", n)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	parts, release := inFlight(t, wsstack.OpUploadPart, "testbatchesinparallel/big.bin")
	go func() { done <- os.WriteFile(filepath.Join(mnt, "big.bin"), make([]byte, 60<<20), 0o644) }()
	if n := settle(parts); n != 8 {
		t.Errorf("%d parts in flight at once, want 8", n)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestLinkFromListingInLargeDirectory (W27): in a directory too large for
// its files' metadata to be read (here, over a limit of 1 entry), writing
// and chmod by name still follow a link first seen in a listing.
func TestLinkFromListingInLargeDirectory(t *testing.T) {
	b, _ := workspace(t)
	putRaw := putWithMetadata(t, "testlinkfromlistinginlargedirectory")
	putRaw("d/target.txt", "secret\n", nil)
	putRaw("d/link", "target.txt", map[string]string{"mode": "41471"}) // 0120777
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{MetadataHeadLimit: 1}))
	if _, err := os.ReadDir(filepath.Join(mnt, "d")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(mnt, "d", "link")
	f, err := os.OpenFile(link, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("open the link for appending: %v", err)
	}
	if _, err := f.WriteString("more\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(link, 0o600); err != nil {
		t.Fatalf("chmod through the link: %v", err)
	}
	if got := readObject(t, b, "d/target.txt"); string(got) != "secret\nmore\n" {
		t.Errorf("target after appending through the link: %q", got)
	}
	if got := readObject(t, b, "d/link"); string(got) != "target.txt" {
		t.Errorf("link object after writing through it: %q, want it unchanged", got)
	}
	o, err := b.Head(context.Background(), "d/target.txt")
	if err != nil || o.Metadata["mode"] != "33152" {
		t.Errorf("target's metadata after chmod through the link: %v %v, want mode 33152", o.Metadata, err)
	}
}

// TestCachesOutliveForgottenNodes (V5, V6): what a walk learnt (listings,
// and the metadata read for ls -l) is kept by path, not in the kernel's
// nodes: once the kernel forgets them (an invalidation here, memory pressure
// in life), a second walk within the TTL sends nothing, and one after it
// only LISTs, with no HEAD for objects whose metadata was read already.
func TestCachesOutliveForgottenNodes(t *testing.T) {
	b, _ := workspace(t)
	putRaw := putWithMetadata(t, "testcachesoutliveforgottennodes")
	for _, name := range []string{"a.txt", "b.txt", "c.txt"} {
		putRaw("d/"+name, name, map[string]string{"mode": "33152", "mtime": "1700000000"}) // 0100600
	}
	for _, tc := range []struct {
		name     string
		wantList bool // the listings expired between the walks
	}{
		{name: "within the TTL"},
		{name: "after the TTL", wantList: true},
	} {
		// The caches' clock: moved on past the TTL, not slept past a
		// short one, which a walk slower than the TTL (CI, -race) would
		// outlive mid-walk.
		var ahead atomic.Int64
		clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
		f := fs.New(b, fs.Options{MetadataTTL: time.Hour, Clock: clock})
		mnt := fusetest.Mount(t, f)
		// ls -l of the mount, then of d.
		walk := func() {
			t.Helper()
			for _, dir := range []string{mnt, filepath.Join(mnt, "d")} {
				ents, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range ents {
					var st syscall.Stat_t
					if err := syscall.Lstat(filepath.Join(dir, e.Name()), &st); err != nil {
						t.Fatal(err)
					}
					if e.Name() != "d" && (st.Mode != 0o100600 || st.Mtim.Sec != 1700000000) {
						t.Errorf("%s: %s: mode %o mtime %d, want the stored 100600 and 1700000000", tc.name, e.Name(), st.Mode, st.Mtim.Sec)
					}
				}
			}
		}
		walk()
		// The kernel forgot d (and what is in it) once go-fuse's tree no
		// longer holds it. (Its inode number tells nothing: a node made
		// again for a name gets the same one.)
		forgetDentries(t, f, "d", func() bool { return !f.Known("d") })
		if tc.wantList {
			ahead.Store(int64(2 * time.Hour))
		}
		stack.S3.ResetCounts()
		walk()
		counts := stack.S3.Counts()
		lists, others := counts[wsstack.OpList], uint64(0)
		for op, n := range counts {
			if op != wsstack.OpList {
				others += n
			}
		}
		switch {
		case others != 0:
			t.Errorf("%s: a second walk after the kernel forgot its nodes sent %v; want no request but LISTs", tc.name, counts)
		case tc.wantList && lists == 0:
			t.Errorf("%s: a walk sent no LIST: the listings were not asked again", tc.name)
		case !tc.wantList && lists != 0:
			t.Errorf("%s: a second walk sent %d LISTs after the kernel forgot its nodes, want none", tc.name, lists)
		}
	}
}

// TestMetadataChangeOnReplacedObject (W35): a chmod by name after another
// program replaced the object (within the metadata TTL, so the mount
// still knows the old version) applies to their version and keeps their
// content and metadata; the copy that stores the mode never carries the
// old version's metadata onto theirs.
func TestMetadataChangeOnReplacedObject(t *testing.T) {
	b, _ := workspace(t)
	putRaw := putWithMetadata(t, "testmetadatachangeonreplacedobject")
	putRaw("f.txt", "ours\n", map[string]string{"mode": "33188", "mine": "old"}) // 0100644
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{MetadataTTL: time.Hour}))
	path := filepath.Join(mnt, "f.txt")
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o644 {
		t.Fatalf("stat before: %v %v", fi, err)
	}
	putRaw("f.txt", "theirs\n", map[string]string{"mode": "33261", "theirs": "kept"}) // 0100755
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatalf("chmod after another program replaced the file: %v", err)
	}
	if got := readObject(t, b, "f.txt"); string(got) != "theirs\n" {
		t.Errorf("content after the chmod: %q, want the other program's", got)
	}
	o, err := b.Head(context.Background(), "f.txt")
	if err != nil {
		t.Fatal(err)
	}
	if o.Metadata["theirs"] != "kept" || o.Metadata["mine"] != "" || o.Metadata["mode"] != "33152" {
		t.Errorf("metadata after the chmod: %v, want theirs kept, mine gone, mode 33152 (0100600)", o.Metadata)
	}
}

// TestUnlinkedQueuedFileFreesItsStaging (W4, W14): a file whose upload failed
// holds its data in a staging copy, charged to --cache-size-mib, until it
// is saved or deleted; once deleted with no handle open, the copy and its
// charge go at once, and the file leaves the retry queue.
func TestUnlinkedQueuedFileFreesItsStaging(t *testing.T) {
	b, _ := workspace(t)
	f := fs.New(b, fs.Options{})
	mnt := fusetest.Mount(t, f)
	writeFailing(t, mnt, "queued.txt", []byte("never saved\n"))
	path := filepath.Join(mnt, "queued.txt")
	if s := f.Stats(); s.StagedBytes == 0 || len(s.Unsaved) != 1 {
		t.Fatalf("after the failed close: %d bytes staged, unsaved %v; want the file's bytes, and it queued", s.StagedBytes, s.Unsaved)
	}
	waitHandles(t, f, 0) // so that the unlink finds no handle open
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if s := f.Stats(); s.StagedBytes != 0 || len(s.Unsaved) != 0 {
		t.Errorf("after the unlink: %d bytes staged, unsaved %v; want none", s.StagedBytes, s.Unsaved)
	}
}

// failPuts makes every PUT of rel, in the workspace of t, fail with a
// 500 until the test ends or the faults are cleared.
func failPuts(t *testing.T, rel string) {
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpPut}, KeyContains: wsName(t) + "/" + rel, Status: 500})
	t.Cleanup(stack.S3.ClearFaults)
}

// writeFailing writes data to rel on the mount with every PUT of it
// failing, and expects close to say EIO.
func writeFailing(t *testing.T, mnt, rel string, data []byte) {
	t.Helper()
	failPuts(t, rel)
	if err := os.WriteFile(filepath.Join(mnt, rel), data, 0o644); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write of %s with every PUT failing: %v, want EIO at close", rel, err)
	}
}

// TestDirModeOutlivesForgottenNode (W21): a chmod of a directory shows
// after the kernel forgot its inode, when the new node is made from the
// parent's listing (tar -x sets its directories' modes last, and a big
// archive gives the kernel time to forget them).
func TestDirModeOutlivesForgottenNode(t *testing.T) {
	b, _ := workspace(t)
	f := fs.New(b, fs.Options{MetadataTTL: time.Hour})
	mnt := fusetest.Mount(t, f)
	if _, err := os.ReadDir(mnt); err != nil { // the root's listing, cached
		t.Fatal(err)
	}
	d := filepath.Join(mnt, "d")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(d, &st); err != nil {
		t.Fatal(err)
	}
	forgetDentries(t, f, "d", func() bool { return !f.Known("d") })
	if err := syscall.Lstat(d, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != syscall.S_IFDIR|0o755 {
		t.Errorf("mode of d after the kernel forgot it: %o, want %o (what chmod set)", st.Mode, syscall.S_IFDIR|0o755)
	}
}

// forgetDentries makes the kernel drop its entry for path (and those under
// it) until forgotten reports that it forgot the inode: the kernel sends
// the FORGET on its own time, and a lookup that comes first is given the
// node that still stands.
func forgetDentries(t *testing.T, f *fs.FS, path string, forgotten func() bool) {
	t.Helper()
	for range 100 {
		// ENOENT: the kernel has no entry left to drop (an earlier round
		// did it, and the FORGET is on its way).
		if errno := f.ForgetEntry(path); errno != 0 && errno != syscall.ENOENT {
			t.Fatalf("make the kernel forget %s: %v", path, errno)
		}
		if forgotten() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the kernel kept the inode of %s through 100 invalidations, so this test checks nothing", path)
}

// TestDirectoryRenameCarriesForgottenQueuedFile (W18): renaming a
// directory saves the queued data of its files first, also of a file
// whose node the kernel forgot (an orphan): the copies carry it, and no
// retry lands under the old name afterwards.
func TestDirectoryRenameCarriesForgottenQueuedFile(t *testing.T) {
	b, _ := workspace(t)
	f := fs.New(b, fs.Options{RetryInterval: time.Hour})
	mnt := fusetest.Mount(t, f)
	// Names of this run's own: the workspace outlives a run (-count).
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	src, dst := "dir-"+run, "moved-"+run
	if err := os.Mkdir(filepath.Join(mnt, src), 0o755); err != nil {
		t.Fatal(err)
	}
	data := []byte("queued, and forgotten by the kernel\n")
	writeFailing(t, mnt, src+"/queued.txt", data)
	waitHandles(t, f, 0)
	for i := 0; f.Orphans() == 0; i++ {
		if i == 100 {
			t.Fatal("the kernel kept the file's inode through 100 invalidations, so this test checks nothing")
		}
		if errno := f.ForgetEntry(src + "/queued.txt"); errno != 0 && errno != syscall.ENOENT { // ENOENT: dropped already
			t.Fatalf("make the kernel forget %s/queued.txt: %v", src, errno)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stack.S3.ClearFaults()
	if err := os.Rename(filepath.Join(mnt, src), filepath.Join(mnt, dst)); err != nil {
		t.Fatalf("rename of the directory: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, dst, "queued.txt")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("%s/queued.txt after the rename: %v, %q; want %q", dst, err, got, data)
	}
	if left := f.Close(context.Background()); left != 0 { // the retries at unmount
		t.Errorf("%d files unsaved at Close, want none", left)
	}
	for key, want := range map[string]bool{dst + "/queued.txt": true, src + "/queued.txt": false} {
		_, err := b.Head(context.Background(), key)
		if got := err == nil; got != want {
			t.Errorf("%s in the bucket: %v (%v), want %v", key, got, err, want)
		}
	}
}

// TestRenameMovesQueuedKey: a file whose upload failed at one handle's
// close is queued under its key; another handle still writes it, so a
// rename of it or of its directory cannot save it first (a file's rename
// sends what it has under the new name, and the writer goes on). The
// queue must move the key with the rename (vfs.WriteBack.Move): the last
// close saves under the new name, and nothing lands under the old one.
func TestRenameMovesQueuedKey(t *testing.T) {
	for _, tt := range []struct {
		name string
		// from and to are renamed; old and new are the file's keys
		// before and after, within the run's directory d.
		from, to, old, new string
	}{
		{"directory", "d", "moved", "d/f.txt", "moved/f.txt"},
		{"file", "d/f.txt", "d/g.txt", "d/f.txt", "d/g.txt"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := workspace(t)
			f := fs.New(b, fs.Options{RetryInterval: time.Hour})
			mnt := fusetest.Mount(t, f)
			run := strconv.FormatInt(time.Now().UnixNano(), 36) // the workspace outlives a run (-count)
			key := func(rel string) string { return run + "-" + rel }
			if err := os.Mkdir(filepath.Join(mnt, key("d")), 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(mnt, key(tt.old))
			first, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			second, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			failPuts(t, key(tt.old))
			if _, err := first.Write([]byte("first\n")); err != nil {
				t.Fatal(err)
			}
			if err := first.Close(); !errors.Is(err, syscall.EIO) {
				t.Fatalf("close with every PUT failing: %v, want EIO", err)
			}
			stack.S3.ClearFaults()
			if err := os.Rename(filepath.Join(mnt, key(tt.from)), filepath.Join(mnt, key(tt.to))); err != nil {
				t.Fatalf("rename: %v", err)
			}
			if _, err := second.WriteAt([]byte("second\n"), 6); err != nil {
				t.Fatal(err)
			}
			if err := second.Close(); err != nil {
				t.Fatalf("last close after the rename: %v", err)
			}
			if left := f.Close(context.Background()); left != 0 {
				t.Errorf("%d files unsaved at Close, want none", left)
			}
			want := "first\nsecond\n"
			if got := string(readObject(t, b, key(tt.new))); got != want {
				t.Errorf("%s in the bucket: %q, want %q", key(tt.new), got, want)
			}
			if _, err := b.Head(context.Background(), key(tt.old)); err == nil {
				t.Errorf("%s is in the bucket: a save landed under the old name", key(tt.old))
			}
		})
	}
}

// TestRetriedSaveReachesForgottenDirectory: a file whose upload failed is
// saved by the background retry after the kernel forgot it and its
// directory. The directory's listing, which the mount keeps by path, must
// take what the save stored: without that, `ls -l` would show the size
// the file had when it was created (0) until the listing expires.
func TestRetriedSaveReachesForgottenDirectory(t *testing.T) {
	b, _ := workspace(t)
	f := fs.New(b, fs.Options{RetryInterval: 50 * time.Millisecond, MetadataTTL: time.Hour})
	mnt := fusetest.Mount(t, f)
	run := strconv.FormatInt(time.Now().UnixNano(), 36) // the workspace outlives a run (-count)
	dir := "dir-" + run
	if err := os.Mkdir(filepath.Join(mnt, dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadDir(filepath.Join(mnt, dir)); err != nil { // a listing, kept for the hour
		t.Fatal(err)
	}
	data := []byte("saved by the retry, after the kernel forgot the directory\n")
	writeFailing(t, mnt, dir+"/f.txt", data)
	waitHandles(t, f, 0)
	forgetDentries(t, f, dir, func() bool { return !f.Known(dir) })
	stack.S3.ClearFaults()
	for deadline := time.Now().Add(time.Minute); len(f.Stats().Unsaved) > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still unsaved a minute after the storage came back: %v", f.Stats().Unsaved)
		}
	}
	fi, err := os.Stat(filepath.Join(mnt, dir, "f.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != int64(len(data)) {
		t.Errorf("size after the retried save: %d, want %d", fi.Size(), len(data))
	}
}

// TestLookupDuringRetryOfForgottenFile: the kernel forgot a file whose
// upload failed, and looks its name up again while the background retry
// of it is still sending it (vfs.Files.Adopt meets a save in flight). The lookup
// shows the file's size, the file then reads whole, and nothing is left
// unsaved.
func TestLookupDuringRetryOfForgottenFile(t *testing.T) {
	b, _ := workspace(t)
	f := fs.New(b, fs.Options{RetryInterval: 50 * time.Millisecond, MetadataTTL: time.Hour})
	mnt := fusetest.Mount(t, f)
	name := "f-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".txt" // the workspace outlives a run (-count)
	data := []byte("sent by the retry while the name is looked up again\n")
	writeFailing(t, mnt, name, data)
	waitHandles(t, f, 0)
	forgetDentries(t, f, name, func() bool { return f.Orphans() > 0 })
	// The next PUT of it (the retry's) stalls for a second, then succeeds.
	puts := stack.S3.Counts()[wsstack.OpPut]
	stack.S3.ClearFaults()
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpPut}, KeyContains: wsName(t) + "/" + name, Stall: time.Second, Times: 1})
	for deadline := time.Now().Add(time.Minute); stack.S3.Counts()[wsstack.OpPut] == puts; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no retry of the upload within a minute")
		}
	}
	fi, err := os.Stat(filepath.Join(mnt, name)) // while the retry's PUT stalls
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != int64(len(data)) {
		t.Errorf("size looked up during the retry: %d, want %d", fi.Size(), len(data))
	}
	if got, err := os.ReadFile(filepath.Join(mnt, name)); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read after the retry: %v, %q; want %q", err, got, data)
	}
	if u := f.Stats().Unsaved; len(u) != 0 {
		t.Errorf("still unsaved after the retry: %v", u)
	}
	if got := readObject(t, b, name); !bytes.Equal(got, data) {
		t.Errorf("in the bucket: %q, want %q", got, data)
	}
}

// TestUnlinkRacingRmdirDoesNotHang: unlinking the last file of an implicit
// directory while another process removes that directory. The kernel
// holds d's lock for the unlink and p's for the rmdir, which waits for d;
// telling the kernel that d vanished needs p's lock. Waiting for that
// without a bound hung both for good.
func TestUnlinkRacingRmdirDoesNotHang(t *testing.T) {
	b, put := workspace(t)
	put("p/d/f", []byte("x")) // p and d have no markers
	// An hour: rmdir must find d's entry cached, not look it up (the
	// lookup's LIST would meet the hold below).
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{MetadataTTL: time.Hour}))
	if _, err := os.Stat(filepath.Join(mnt, "p", "d", "f")); err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	var probed atomic.Bool
	t.Cleanup(stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpList}, KeyContains: "testunlinkracingrmdirdoesnothang/p/d/",
		Hold: hold, Matched: func(wsstack.Op, string) { probed.Store(true) }}))
	unlinked := make(chan error, 1)
	go func() { unlinked <- os.Remove(filepath.Join(mnt, "p", "d", "f")) }()
	// The unlink has deleted f and asks whether d is empty now.
	waitUntil(t, "the unlink's probe of d", probed.Load)
	rmdir := exec.Command("rmdir", filepath.Join(mnt, "p", "d"))
	if err := rmdir.Start(); err != nil {
		t.Fatal(err)
	}
	// rmdir holds p's lock and sleeps in the kernel for d's: in its
	// rmdir (84) or unlinkat (263) call, not paging in at exec.
	waitUntil(t, "rmdir blocked in the kernel", func() bool {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", rmdir.Process.Pid))
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		call, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", rmdir.Process.Pid))
		nr, _, _ := strings.Cut(string(call), " ")
		return err == nil && len(fields) > 0 && fields[0] == "D" && (nr == "84" || nr == "263")
	})
	close(hold)
	select {
	case err := <-unlinked:
		if err != nil {
			t.Errorf("unlink: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("unlink hung for a minute behind an rmdir of its directory (a deadlock in the kernel)")
	}
	rmdir.Wait() // gone already, or removed now: either is right
}

// waitUntil polls cond for up to 30 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30 s for %s", what)
		}
	}
}
