package e2e

import (
	"bytes"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"

	"mount-ws/internal/detdata"
	"mount-ws/internal/wsstack"
)

// TestPartialSave: a small change to a large file sends only what
// changed, widened to S3's smallest part (5 MiB); the rest is copied on
// the server from the version the file was opened with, in as few parts
// as S3 allows, and only the bytes a sent part lacks are fetched.
func TestPartialSave(t *testing.T) {
	const mib = 1 << 20
	const size = 40 * mib
	ws := newWorkspace(t)
	orig := detBytes(t, 7, size)
	m := mountWS(t, ws, mountOpts{})
	line := []byte("epoch 41, loss 0.173\n")

	// usage runs f and returns what it cost: bytes to and from S3, and
	// requests by kind.
	usage := func(f func()) (sent, got int64, ops map[wsstack.Op]uint64) {
		before, counts := m.status(t).Totals, env.stack.S3.Counts()
		f()
		after, now := m.status(t).Totals, env.stack.S3.Counts()
		ops = map[wsstack.Op]uint64{}
		for op, n := range now {
			ops[op] = n - counts[op]
		}
		return after.S3WrittenBytes - before.S3WrittenBytes, after.S3ReadBytes - before.S3ReadBytes, ops
	}

	t.Run("append a line", func(t *testing.T) {
		ws.putObject(t, "log.csv", orig, nil)
		sent, got, ops := usage(func() {
			f, err := os.OpenFile(m.path("log.csv"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(line); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		})
		ws.wantObject(t, "log.csv", append(bytes.Clone(orig), line...))
		t.Logf("sent %d bytes, fetched %d, requests %v", sent, got, ops)
		// The line alone, after one copy of the whole file.
		if sent > int64(len(line))+mib || got > mib {
			t.Errorf("appending %d bytes to a %d MiB file sent %d bytes and fetched %d; want the line only", len(line), size/mib, sent, got)
		}
		if ops[wsstack.OpUploadPartCopy] != 1 {
			t.Errorf("%d parts copied on the server, want one, of the whole file", ops[wsstack.OpUploadPartCopy])
		}
	})

	t.Run("one byte in the middle", func(t *testing.T) {
		ws.putObject(t, "model.bin", orig, nil)
		sent, _, ops := usage(func() {
			f, err := os.OpenFile(m.path("model.bin"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte{'X'}, 20*mib); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		})
		want := bytes.Clone(orig)
		want[20*mib] = 'X'
		ws.wantObject(t, "model.bin", want)
		if sent > 5*mib+mib {
			t.Errorf("changing one byte sent %d bytes; want one 5 MiB part", sent)
		}
		if ops[wsstack.OpUploadPartCopy] != 2 {
			t.Errorf("%d parts copied on the server, want the 2 around the change", ops[wsstack.OpUploadPartCopy])
		}
	})

	t.Run("read, shrink and grow through the open file", func(t *testing.T) {
		ws.putObject(t, "grow.bin", orig, nil)
		f, err := os.OpenFile(m.path("grow.bin"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 100)
		if _, err := f.ReadAt(buf, 30*mib); err != nil || !bytes.Equal(buf, orig[30*mib:30*mib+100]) {
			t.Fatalf("read of bytes not fetched yet: %v", err)
		}
		if err := f.Truncate(25 * mib); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("end"), 35*mib); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		want := append(bytes.Clone(orig[:25*mib]), make([]byte, 10*mib)...)
		want = append(want, "end"...)
		ws.wantObject(t, "grow.bin", want)
	})

	t.Run("read what was never fetched, after a save", func(t *testing.T) {
		// The save makes the new version the base: bytes the copy still
		// lacks are fetched from it, by the ETag the save was answered with.
		ws.putObject(t, "resaved.bin", orig, nil)
		f, err := os.OpenFile(m.path("resaved.bin"), os.O_RDWR|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(line); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		if _, err := f.ReadAt(buf, 3*mib); err != nil || !bytes.Equal(buf, orig[3*mib:3*mib+100]) {
			t.Fatalf("read of bytes never fetched, after a partial save: %v", err)
		}
		if _, err := f.Write(line); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		ws.wantObject(t, "resaved.bin", append(append(bytes.Clone(orig), line...), line...))
	})

	t.Run("read through a handle open for writing", func(t *testing.T) {
		// Bytes the staging copy never held are read from S3 through the
		// handle's read-ahead, as for a file not being written: nothing
		// is copied into the staging file (which halved the speed).
		ws.putObject(t, "rw.bin", orig, nil)
		f, err := os.OpenFile(m.path("rw.bin"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got, err := io.ReadAll(f)
		if err != nil || !bytes.Equal(got, orig) {
			t.Fatalf("read all through an O_RDWR handle: %d bytes, %v", len(got), err)
		}
		if staged := m.status(t).StagedBytes; staged != 0 {
			t.Errorf("reading %d MiB through a handle open for writing staged %d bytes, want 0", size/mib, staged)
		}
	})

	t.Run("replaced by another program while open", func(t *testing.T) {
		// Two whole parts: the append fetches nothing, so only the
		// copies' condition can notice the change.
		ws.putObject(t, "shared.bin", orig[:32*mib], nil)
		f, err := os.OpenFile(m.path("shared.bin"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(line); err != nil {
			t.Fatal(err)
		}
		theirs := detBytes(t, 8, 32*mib)
		ws.putObject(t, "shared.bin", theirs, nil)
		err = f.Close()
		wantErrno(t, "close of a file replaced meanwhile, with bytes never fetched", err, syscall.ESTALE)
		ws.wantObject(t, "shared.bin", theirs) // not clobbered
		if log := m.readLog(t); !strings.Contains(log, "replaced by another program while open for writing") {
			t.Errorf("no log line saying why the change was dropped:\n%s", log)
		}
	})
}

// detBytes returns size bytes of the deterministic data of seed.
func detBytes(t *testing.T, seed uint64, size int64) []byte {
	t.Helper()
	b, err := io.ReadAll(detdata.New(seed, size))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPartialSaveAnswerLost: a partial save that S3 committed but whose
// answer was lost (the connection reset after the commit) replaced the
// base version with this mount's own content; the next save must notice
// that it is its own and go on from it, not take it for another program's.
func TestPartialSaveAnswerLost(t *testing.T) {
	const mib = 1 << 20
	ws := newWorkspace(t)
	orig := detBytes(t, 9, 40*mib)
	ws.putObject(t, "metrics.csv", orig, nil)
	m := mountWS(t, ws, mountOpts{extra: []string{"--upload-retry-interval", "1h"}})
	t.Cleanup(env.stack.S3.ClearFaults)
	appendLine := func(line string) error {
		f, err := os.OpenFile(m.path("metrics.csv"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
		return f.Close()
	}
	env.stack.S3.Inject(wsstack.S3Fault{
		Ops: []wsstack.Op{wsstack.OpCompleteMultipart}, KeyContains: ws.key("metrics.csv"),
		Reset: true, Carried: true, // every attempt: the SDK retries a reset
	})
	err := appendLine("epoch 1\n")
	wantErrno(t, "close whose completion was committed but not answered", err, syscall.EIO)
	env.stack.S3.ClearFaults()
	ws.wantObject(t, "metrics.csv", append(bytes.Clone(orig), "epoch 1\n"...)) // committed all the same

	if err := appendLine("epoch 2\n"); err != nil {
		t.Fatalf("the next append: %v (its own earlier save taken for another program's?)", err)
	}
	ws.wantObject(t, "metrics.csv", append(bytes.Clone(orig), "epoch 1\nepoch 2\n"...))
}

// TestAppendBeyondStagingLimit: the staging limit counts what the copy
// holds, not the file's size: a line appended to a file larger than
// --cache-size-mib is fine, while writing that much is not.
func TestAppendBeyondStagingLimit(t *testing.T) {
	const mib = 1 << 20
	ws := newWorkspace(t)
	orig := detBytes(t, 10, 20*mib)
	ws.putObject(t, "big.log", orig, nil)
	m := mountWS(t, ws, mountOpts{extra: []string{"--cache-size-mib", "1"}})
	f, err := os.OpenFile(m.path("big.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("open a 20 MiB file for appending with a 1 MiB staging limit: %v", err)
	}
	if _, err := f.WriteString("one more line\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ws.wantObject(t, "big.log", append(bytes.Clone(orig), "one more line\n"...))
	err = os.WriteFile(m.path("new.bin"), make([]byte, 2*mib), 0o644)
	wantErrno(t, "writing 2 MiB with a 1 MiB staging limit", err, syscall.ENOSPC)
}

// TestTruncateByNameLeavesNoCopy: a truncation by name keeps no staging
// copy once saved, so a later append builds on what the bucket holds by
// then, not on the version the truncation saw.
func TestTruncateByNameLeavesNoCopy(t *testing.T) {
	const mib = 1 << 20
	ws := newWorkspace(t)
	ws.putObject(t, "data.bin", detBytes(t, 12, 40*mib), nil)
	m := mountWS(t, ws, mountOpts{})
	if err := os.Truncate(m.path("data.bin"), 36*mib); err != nil {
		t.Fatal(err)
	}
	if staged := m.status(t).StagedBytes; staged != 0 {
		t.Errorf("%d bytes staged after a truncation by name, want 0", staged)
	}
	theirs := detBytes(t, 13, 40*mib)
	ws.putObject(t, "data.bin", theirs, nil)
	f, err := os.OpenFile(m.path("data.bin"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("appended\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close of an append to a file replaced after its truncation: %v", err)
	}
	ws.wantObject(t, "data.bin", append(bytes.Clone(theirs), "appended\n"...))
}
