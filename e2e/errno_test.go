package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"mount-ws/internal/wsstack"
)

// TestErrnos checks, end to end, the errnos the README promises for
// failures that are not the file system's own: access denied by the
// storage, a signal during a read, and the staging space used up.
func TestErrnos(t *testing.T) {
	ws := newWorkspace(t)
	m := mountWS(t, ws, mountOpts{extra: []string{"--cache-size-mib", "1"}})
	t.Cleanup(env.stack.S3.ClearFaults)

	t.Run("EACCES from S3 AccessDenied", func(t *testing.T) {
		ws.putObject(t, "denied.txt", []byte("private"), nil)
		env.stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpGet, wsstack.OpHead}, KeyContains: ws.key("denied.txt"), Status: 403})
		defer env.stack.S3.ClearFaults()
		_, err := os.ReadFile(m.path("denied.txt"))
		wantErrno(t, "read of an object S3 refuses", err, syscall.EACCES)
	})

	t.Run("EACCES on close when S3 refuses the upload", func(t *testing.T) {
		env.stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpPut}, KeyContains: ws.key("refused.txt"), Status: 403})
		defer env.stack.S3.ClearFaults()
		err := os.WriteFile(m.path("refused.txt"), []byte("kept for a retry"), 0o644)
		wantErrno(t, "close of a file whose PUT S3 refuses", err, syscall.EACCES)
		env.stack.S3.ClearFaults()
		// Kept and queued like any failed upload: a rewrite saves it.
		if err := os.WriteFile(m.path("refused.txt"), []byte("saved"), 0o644); err != nil {
			t.Fatalf("rewrite once S3 accepts it: %v", err)
		}
		ws.wantObject(t, "refused.txt", []byte("saved"))
	})

	t.Run("a read stalled on S3 ends at Ctrl-C", func(t *testing.T) {
		// The kernel reads through its page cache with background
		// requests, and waits for them killably: a signal the program
		// catches does not interrupt the read (no EINTR), but one that
		// ends the program does, at once, without waiting for S3.
		ws.putObject(t, "slow.txt", []byte("slow"), nil)
		env.stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpGet}, KeyContains: ws.key("slow.txt"), Stall: time.Minute})
		defer env.stack.S3.ClearFaults()
		gets := func() uint64 { return env.stack.S3.Counts()[wsstack.OpGet] }
		before := gets()
		cat := exec.Command("cat", m.path("slow.txt"))
		if err := cat.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for gets() == before {
			if time.Now().After(deadline) {
				t.Fatal("cat's read never reached S3")
			}
			time.Sleep(10 * time.Millisecond)
		}
		cat.Process.Signal(os.Interrupt)
		exited := make(chan error, 1)
		go func() { exited <- cat.Wait() }()
		select {
		case err := <-exited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
				t.Errorf("cat after SIGINT: %v, want killed by the signal", err)
			}
		case <-time.After(20 * time.Second):
			cat.Process.Kill()
			t.Fatal("cat did not end within 20 s of SIGINT while its read waited for S3 (stalled for a minute)")
		}
	})

	t.Run("ENOSPC past --cache-size-mib", func(t *testing.T) {
		f, err := os.Create(m.path("too-big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		chunk := bytes.Repeat([]byte{1}, 256<<10)
		var werr error
		for written := 0; written < 4<<20 && werr == nil; written += len(chunk) {
			_, werr = f.Write(chunk)
		}
		wantErrno(t, "writing 4 MiB with a 1 MiB staging limit", werr, syscall.ENOSPC)
	})
}
