package fs_test

import (
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"mount-ws/fs"
	"mount-ws/internal/fusetest"
	"mount-ws/internal/wsstack"
)

// A signal to the calling thread makes the kernel interrupt a FUSE
// request, and go-fuse cancels its context. A rename caught by one, in
// the lookups of its path or in the copy, (programs get signals all the
// time; Go's runtime sends them to its own threads) must still complete
// rather than fail, possibly half-way, with EINTR.
func TestRenameCompletesDespiteSignals(t *testing.T) {
	b, put := workspace(t)
	put("src.txt", []byte("payload"))
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	if _, err := os.Stat(filepath.Join(mnt, "src.txt")); err != nil {
		t.Fatal(err)
	}
	stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpCopy}, Stall: 500 * time.Millisecond, Times: 1})
	t.Cleanup(stack.S3.ClearFaults)

	tids := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- syscall.Gettid()
		// The system call itself: os.Rename might hide an EINTR.
		done <- syscall.Rename(filepath.Join(mnt, "src.txt"), filepath.Join(mnt, "dst.txt"))
	}()
	tid := <-tids
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-tick.C:
			syscall.Tgkill(os.Getpid(), tid, syscall.SIGURG)
		}
	}
	if err != nil {
		t.Fatalf("rename under signals: %v, want success", err)
	}
	if got := readObject(t, b, "dst.txt"); string(got) != "payload" {
		t.Errorf("dst.txt: %q", got)
	}
}
