package fs_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mount-ws/fs"
	"mount-ws/internal/fusetest"
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
