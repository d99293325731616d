package fs_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"mount-ws/datacache"
	"mount-ws/fs"
	"mount-ws/internal/detdata"
	"mount-ws/internal/fusetest"
	"mount-ws/internal/wsstack"
)

// waitHandles waits until the mount has want file handles open: the
// kernel releases a handle only after close(2) returned.
func waitHandles(t *testing.T, f *fs.FS, want int64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); f.Stats().OpenHandles != want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d file handles open after a minute, want %d", f.Stats().OpenHandles, want)
		}
	}
}

// TestPassthrough: on a read-only mount with a data cache, a file read
// whole once is read again by the kernel straight from the cache's copy
// (no GET, no read through the mount), with read(2) and mmap(2). An
// object replaced in the bucket while a passthrough reader has it open
// cannot be opened until that reader closes (EBUSY, where the kernel
// would say EIO), and the reader reads on what it opened; a file that has
// an ordinary open gets no passthrough open (the kernel would fail it),
// and every read returns the right bytes.
func TestPassthrough(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("passthrough needs root: the kernel registers a passthrough file only for CAP_SYS_ADMIN")
	}
	b, put := workspace(t)
	v1, _ := io.ReadAll(detdata.New(51, 5<<20+123))
	v2, _ := io.ReadAll(detdata.New(52, 6<<20+7))
	put("big.bin", v1)
	c, err := datacache.Open(filepath.Join(t.TempDir(), "data-cache"), "fs/testpassthrough", 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	f := fs.New(b, fs.Options{DataCache: c, ReadOnly: true, MetadataTTL: -1})
	mnt, server := fusetest.MountServer(t, f, fs.MountConfig{FsName: "mount-ws-test"})
	if server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 {
		t.Skip("this kernel has no FUSE passthrough (Linux 6.9 or later has)")
	}
	path := filepath.Join(mnt, "big.bin")
	open := func() *os.File {
		t.Helper()
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fh.Close() }) // before the unmount, should the test fail
		return fh
	}
	readAll := func(fh *os.File, want []byte, what string) {
		t.Helper()
		got := make([]byte, len(want)+10)
		n, err := fh.ReadAt(got, 0)
		if err != io.EOF || !bytes.Equal(got[:n], want) {
			t.Fatalf("%s: %d bytes (%v), right bytes %v; want %d", what, n, err, bytes.Equal(got[:n], want), len(want))
		}
	}
	passthroughs := func() uint64 { return f.Stats().PassthroughOpens }

	first := open()
	readAll(first, v1, "first read")
	first.Close()
	waitHandles(t, f, 0)

	stack.S3.ResetCounts()
	hits := f.Stats().DataCacheHits
	reader := open()
	readAll(reader, v1, "passthrough read")
	m, err := syscall.Mmap(int(reader.Fd()), 0, len(v1), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap of a passthrough file: %v", err)
	}
	if !bytes.Equal(m, v1) {
		t.Error("mmap of a passthrough file: wrong bytes")
	}
	syscall.Munmap(m)
	again := open() // a second reader of the same version shares the copy
	readAll(again, v1, "a second passthrough reader")
	again.Close()
	if passthroughs() != 2 || f.Stats().DataCacheHits != hits || stack.S3.Counts()[wsstack.OpGet] != 0 {
		t.Fatalf("second read: %d passthrough opens, %d blocks read through the mount, %d GETs; want 2, 0, 0",
			passthroughs(), f.Stats().DataCacheHits-hits, stack.S3.Counts()[wsstack.OpGet])
	}

	// Another program replaces it while the reader has it open.
	put("big.bin", v2)
	if _, err := os.Open(path); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("open of a new version beside a passthrough reader of the old: %v, want EBUSY", err)
	}
	readAll(reader, v1, "the passthrough reader after its object was replaced")
	reader.Close()

	// An ordinary open first (no copy of the new version yet): an open
	// after the copy is made is not passed through while it lasts.
	waitHandles(t, f, 0)
	ordinary := open()
	full := open()
	readAll(full, v2, "an open of the new version once the reader closed")
	full.Close()
	waitHandles(t, f, 1) // the copy of v2 is whole
	before := passthroughs()
	beside := open()
	readAll(beside, v2, "an open beside an ordinary one")
	readAll(ordinary, v2, "the ordinary open")
	if passthroughs() != before {
		t.Error("an open beside an ordinary open was passed through")
	}
	beside.Close()
	ordinary.Close()
	waitHandles(t, f, 0)
	last := open()
	readAll(last, v2, "a read of the new version's copy")
	last.Close()
	if passthroughs() != before+1 {
		t.Errorf("%d passthrough opens of the new version once alone, want 1", passthroughs()-before)
	}
}
