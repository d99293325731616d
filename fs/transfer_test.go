package fs_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"mount-ws/fs"
	"mount-ws/internal/detdata"
	"mount-ws/internal/fusetest"
	"mount-ws/internal/wsstack"
)

// A transfer that breaks off half-way is asked again for the rest: the
// reader gets every byte, and when it keeps breaking off, an error, never
// a short file (the kernel takes a short read for the end of the file and
// shrinks it). Reading through the window and through a file open for
// writing (which loads the object into its staging copy) both fetch.
func TestBrokenTransfersAreResumed(t *testing.T) {
	b, put := workspace(t)
	const size = 3 << 20
	want, _ := io.ReadAll(detdata.New(77, size))
	put("cut.bin", want)
	f := fs.New(b, fs.Options{CacheDir: t.TempDir()})
	mnt := fusetest.Mount(t, f)
	path := filepath.Join(mnt, "cut.bin")
	const key = "testbrokentransfersareresumed/cut.bin"

	// dropPages makes the kernel forget the file's pages, so that the next
	// read asks the mount again.
	dropPages := func() {
		t.Helper()
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		if err := unix.Fadvise(int(fh.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("broken twice", func(t *testing.T) {
		remove := stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpGet}, KeyContains: key, Cut: 100 << 10, Times: 2})
		defer remove()
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read with two transfers cut at 100 KiB: %d bytes, %v; want all %d", len(got), err, size)
		}
	})
	t.Run("always broken", func(t *testing.T) {
		dropPages()
		remove := stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpGet}, KeyContains: key, Cut: 100 << 10})
		defer remove()
		got, err := os.ReadFile(path)
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("read with every transfer cut: %d bytes, %v; want EIO", len(got), err)
		}
		remove()
		dropPages()
		if fi, err := os.Stat(path); err != nil || fi.Size() != size {
			t.Errorf("after the failed read the file shows %v, %v; want its %d bytes", fi.Size(), err, size)
		}
	})
	t.Run("open for writing", func(t *testing.T) {
		remove := stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpGet}, KeyContains: key, Cut: 100 << 10, Times: 2})
		defer remove()
		fh, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		got := make([]byte, size)
		if n, err := fh.ReadAt(got, 0); n != size || !bytes.Equal(got, want) {
			t.Fatalf("read of a file open for writing with two transfers cut: %d bytes, %v", n, err)
		}
	})
}
