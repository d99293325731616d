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

	// The system call itself: os.Rename might hide an EINTR.
	err := underSignals(func() error {
		return syscall.Rename(filepath.Join(mnt, "src.txt"), filepath.Join(mnt, "dst.txt"))
	})
	if err != nil {
		t.Fatalf("rename under signals: %v, want success", err)
	}
	if got := readObject(t, b, "dst.txt"); string(got) != "payload" {
		t.Errorf("dst.txt: %q", got)
	}
}

// TestNamespaceCallsCompleteDespiteSignals: unlink, mkdir and chmod whose
// S3 request is slow complete despite signals to the caller, as rename
// does (README: every other operation completes despite signals).
func TestNamespaceCallsCompleteDespiteSignals(t *testing.T) {
	b, put := workspace(t)
	put("gone.txt", []byte("x"))
	put("mode.txt", []byte("x"))
	mnt := fusetest.Mount(t, fs.New(b, fs.Options{}))
	for _, name := range []string{"gone.txt", "mode.txt"} {
		if _, err := os.Stat(filepath.Join(mnt, name)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(stack.S3.ClearFaults)
	for _, c := range []struct {
		name string
		op   wsstack.Op
		call func() error
	}{
		{"unlink", wsstack.OpDelete, func() error { return syscall.Unlink(filepath.Join(mnt, "gone.txt")) }},
		{"mkdir", wsstack.OpPut, func() error { return syscall.Mkdir(filepath.Join(mnt, "made"), 0o755) }},
		{"chmod", wsstack.OpCopy, func() error { return syscall.Chmod(filepath.Join(mnt, "mode.txt"), 0o600) }},
	} {
		stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{c.op}, Stall: 500 * time.Millisecond, Times: 1})
		if err := underSignals(c.call); err != nil {
			t.Errorf("%s under signals: %v, want success", c.name, err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mnt, "mode.txt"), &st); err != nil || st.Mode&0o777 != 0o600 {
		t.Errorf("mode.txt after chmod: %o %v", st.Mode, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "made")); err != nil {
		t.Errorf("made after mkdir: %v", err)
	}
}

// underSignals runs call on a thread of its own and sends that thread a
// signal every 5 ms until it returns.
func underSignals(call func() error) error {
	tids := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- syscall.Gettid()
		done <- call()
	}()
	tid := <-tids
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			syscall.Tgkill(os.Getpid(), tid, syscall.SIGURG)
		}
	}
}
