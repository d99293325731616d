package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"mount-ws/internal/detdata"
	"mount-ws/internal/wsstack"
	"mount-ws/vfs"
)

// The tests in this file change stack-wide state (S3 faults, the
// credentials' TTL), so they do not call t.Parallel: Go runs them before,
// not alongside, the parallel tests. Their faults name the test's own keys
// all the same.

// within runs f and fails the test if it takes longer than d (a hung
// close or fsync must not hang the suite).
func within(t *testing.T, d time.Duration, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		return nil
	}
}

// waitNoUploads polls until the key has no incomplete multipart upload.
func (w *workspace) waitNoUploads(t *testing.T, rel string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ups := w.incompleteUploads(t, rel)
		if len(ups) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("bucket: %d incomplete multipart upload(s) of %s still there after %v, want none (first started %v)", len(ups), w.key(rel), d, aws.ToTime(ups[0].Initiated))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestUploadFailure(t *testing.T) {
	tests := []struct {
		name string
		size int
		// before is an existing object, overwritten in place (without
		// O_TRUNC, which may commit the empty file at once); nil: a new
		// file, created with O_TRUNC.
		before []byte
		// retry is what follows the failure: "fsync": reopen and fsync;
		// "rewrite": write the bytes again; "delete": unlink the file,
		// after which nothing may be uploaded.
		retry string
		// atFsync makes fsync, not close, meet the failure (then fsync
		// again once the fault is gone).
		atFsync bool
	}{
		{name: "new small file, retried by fsync", size: 100 << 10, retry: "fsync"},
		{name: "new small file, rewritten", size: 100 << 10, retry: "rewrite"},
		{name: "new 20 MiB file, retried by fsync", size: 20 * mib, retry: "fsync"},
		{name: "new file deleted after the failure", size: 5 * mib, retry: "delete"},
		{name: "overwrite in place keeps the old object", size: 3 * mib, before: []byte("the old version\n"), retry: "fsync"},
		{name: "fsync fails, then fsync again", size: 12 * mib, atFsync: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newWorkspace(t)
			rel := "data/result.bin"
			if tt.before != nil {
				ws.putObject(t, rel, tt.before, nil)
			}
			m := mountWS(t, ws, mountOpts{})
			if err := os.MkdirAll(m.path("data"), 0o755); err != nil {
				t.Fatalf("mkdir data: %v", err)
			}
			data, _ := io.ReadAll(detdata.New(uint64(500+i), int64(tt.size)))
			// Every request that uploads the object's bytes fails, for as
			// long as the SDK and mount-ws retry.
			fault := wsstack.S3Fault{
				Ops:         []wsstack.Op{wsstack.OpPut, wsstack.OpUploadPart, wsstack.OpCompleteMultipart},
				KeyContains: ws.key(rel),
				Status:      500,
			}
			t.Cleanup(env.stack.S3.ClearFaults)

			flags := os.O_RDWR | os.O_CREATE | os.O_TRUNC
			if tt.before != nil {
				flags = os.O_RDWR
			}
			f, err := os.OpenFile(m.path(rel), flags, 0o644)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer f.Close()
			if _, err := f.Write(data); err != nil {
				t.Fatalf("write %d bytes: %v", len(data), err)
			}
			env.stack.S3.Inject(fault)
			if tt.atFsync {
				err = within(t, 2*time.Minute, "fsync while uploads fail", f.Sync)
				wantErrno(t, "fsync while every upload request answers 500", err, syscall.EIO)
			} else {
				err = within(t, 2*time.Minute, "close while uploads fail", f.Close)
				wantErrno(t, "close while every upload request answers 500", err, syscall.EIO)
			}
			if tt.before != nil {
				ws.wantObject(t, rel, tt.before)
			} else {
				ws.wantNoObject(t, rel)
			}
			// The data is kept: the mount still shows what was written.
			wantMountBytes(t, m.path(rel), data)
			// The failed multipart upload, if any, was aborted (the next
			// background retry is 15 s away).
			ws.waitNoUploads(t, rel, 5*time.Second)

			env.stack.S3.ClearFaults()
			switch {
			case tt.atFsync:
				if err := within(t, 2*time.Minute, "fsync after the fault", f.Sync); err != nil {
					t.Errorf("fsync again once uploads work: %v", err)
				}
				ws.wantObject(t, rel, data)
				if err := within(t, time.Minute, "close", f.Close); err != nil {
					t.Errorf("close after the successful fsync: %v", err)
				}
			case tt.retry == "fsync":
				g, err := os.OpenFile(m.path(rel), os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatalf("reopen for the retry: %v", err)
				}
				if err := within(t, 2*time.Minute, "fsync of the retry", g.Sync); err != nil {
					t.Errorf("fsync of a reopened handle once uploads work: %v", err)
				}
				if err := within(t, time.Minute, "close of the retry", g.Close); err != nil {
					t.Errorf("close of the retry: %v", err)
				}
			case tt.retry == "rewrite":
				writeFile(t, m.path(rel), bytes.NewReader(data), mib)
			case tt.retry == "delete":
				if err := os.Remove(m.path(rel)); err != nil {
					t.Fatalf("unlink after the failed close: %v", err)
				}
				// The unmount's last pass over the retry queue must not
				// upload it (TestBackgroundRetry covers a background pass).
				ws.wantNoObject(t, rel)
				wantGone(t, m.path(rel))
				m.unmount(t)
				ws.wantNoObject(t, rel)
				ws.waitNoUploads(t, rel, 10*time.Second)
				return
			}
			ws.wantObject(t, rel, data)
			ws.waitNoUploads(t, rel, 10*time.Second)
		})
	}
}

func TestLargeWriteShortCredentialTTL(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1 GiB (skipped with -short)")
	}
	const size = 1 << 30
	const ttl = 3 * time.Second
	env.stack.API.SetTTL(ttl)
	t.Cleanup(func() { env.stack.API.SetTTL(time.Hour) })
	ws := newWorkspace(t)
	m := mountWS(t, ws, mountOpts{})
	minted := env.stack.API.Stats().Minted
	start := time.Now()
	writeFile(t, m.path("big.bin"), detdata.New(7, size), mib)
	elapsed := time.Since(start)
	renewed := env.stack.API.Stats().Minted - minted
	t.Logf("1 GiB written and closed in %v (%.0f MiB/s); %d credentials minted meanwhile", elapsed.Round(time.Millisecond), float64(size)/mib/elapsed.Seconds(), renewed)
	// The point of the test: the write outlived the credentials it started
	// with. Were the machine fast enough to finish within one lifetime,
	// it would prove nothing.
	if elapsed <= ttl {
		t.Errorf("the write took %v, within one credential lifetime (%v): it did not outlive its credentials", elapsed, ttl)
	}
	if renewed < 2 {
		t.Errorf("%d credentials minted during a %v write with %v credentials, want at least 2", renewed, elapsed.Round(time.Millisecond), ttl)
	}
	ws.wantDetdata(t, "big.bin", 7, size)
	// Memory stays bounded: mount-ws did not hold the file in memory.
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.cmd.Process.Pid)); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				var kib int64
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kib)
				t.Logf("mount-ws peak resident memory: %d MiB", kib>>10)
				if !raceEnabled && kib<<10 >= size*3/4 {
					t.Errorf("mount-ws peak resident memory %d MiB while writing a %d MiB file, want well under the file's size", kib>>10, size>>20)
				}
			}
		}
	}
	if fi, err := os.Stat(m.path("big.bin")); err != nil || fi.Size() != size {
		t.Errorf("mount: stat big.bin: %s, want size %d", statSize(fi, err), size)
	}
}

func TestKillDuringWrite(t *testing.T) {
	const size = 256 * mib
	const seed = 77
	tests := []struct {
		name string
		// atClose: kill while close is committing (its final request is
		// stalled); otherwise kill after half the file is written.
		atClose bool
		// overwrite: the file exists already; its previous version must
		// survive the kill.
		overwrite bool
	}{
		{"half written", false, false},
		{"while close commits", true, false},
		{"overwrite half written", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newWorkspace(t)
			rel := "big.bin"
			cacheDir := t.TempDir()
			previous := []byte("the previous version, which must survive\n")
			if tt.overwrite {
				ws.putObject(t, rel, previous, nil)
			}
			m := mountWS(t, ws, mountOpts{cacheDir: cacheDir})
			t.Cleanup(env.stack.S3.ClearFaults)
			f, err := os.Create(m.path(rel))
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			defer f.Close()
			before := env.stack.S3.Counts()
			src := detdata.New(seed, size)
			buf := make([]byte, mib)
			written := 0
			limit := size
			if !tt.atClose {
				limit = size / 2
			}
			for written < limit {
				if _, err := io.ReadFull(src, buf); err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write(buf); err != nil {
					t.Fatalf("write at %d: %v", written, err)
				}
				written += len(buf)
			}
			// An empty object (the file as created) is not partial; a
			// prefix of the data would be.
			wantNoneOrComplete := func(when string) {
				t.Helper()
				if tt.overwrite {
					// Not none, not empty: the previous version.
					if got, ok := ws.getObject(t, rel); !ok || !bytes.Equal(got, previous) {
						t.Errorf("bucket %s: %s holds %d bytes (exists: %v), want the previous version (%d bytes)", when, ws.key(rel), len(got), ok, len(previous))
					}
					return
				}
				h := ws.head(t, rel)
				if h == nil || *h.ContentLength == 0 {
					return
				}
				if *h.ContentLength != size {
					t.Errorf("bucket %s: partial object %s of %d bytes, want none, an empty one or all %d", when, ws.key(rel), *h.ContentLength, size)
					return
				}
				ws.wantDetdata(t, rel, seed, size)
			}
			if h := ws.head(t, rel); !tt.overwrite && h != nil && *h.ContentLength != 0 {
				t.Errorf("bucket: %s has %d bytes while the file is still being written (%d bytes so far), want none or an empty object", ws.key(rel), *h.ContentLength, written)
			}
			if tt.overwrite {
				wantNoneOrComplete("while the new version is being written")
			}
			if tt.atClose {
				env.stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpCompleteMultipart, wsstack.OpPut}, KeyContains: ws.key(rel), Stall: 5 * time.Minute})
				base := commits()
				closed := make(chan error, 1)
				go func() { closed <- f.Close() }()
				deadline := time.Now().Add(2 * time.Minute)
				for commits() == base {
					if time.Now().After(deadline) {
						t.Fatalf("close did not send CompleteMultipartUpload or PutObject within 2 minutes")
					}
					select {
					case err := <-closed:
						t.Fatalf("close returned %v before its commit request was answered", errOrSuccess(err))
					case <-time.After(10 * time.Millisecond):
					}
				}
				m.kill(t)
				if err := within(t, time.Minute, "close on the killed mount", func() error { return <-closed }); err == nil {
					t.Errorf("close returned success although mount-ws was killed before the commit was answered")
				}
			} else {
				m.kill(t)
				if _, err := f.Write(buf); err == nil {
					t.Errorf("write after kill -9 of mount-ws succeeded")
				}
			}
			env.stack.S3.ClearFaults()
			after := env.stack.S3.Counts()
			incomplete := len(ws.incompleteUploads(t, rel))
			t.Logf("before the kill: %d MiB written, %d multipart upload(s) created, %d part(s) uploaded; after it, %d incomplete upload(s) of the key",
				written>>20, after[wsstack.OpCreateMultipart]-before[wsstack.OpCreateMultipart], after[wsstack.OpUploadPart]-before[wsstack.OpUploadPart], incomplete)
			if !tt.atClose && !tt.overwrite && incomplete == 0 {
				// 128 MiB written sequentially streams as a multipart
				// upload; without one, the remount below has nothing to
				// clean up and proves nothing.
				t.Errorf("no incomplete upload of %s after the kill, want the streamed one", rel)
			}
			wantNoneOrComplete("after the kill")
			// Staging files have no name (or lose it as soon as they are
			// made): a crash leaves nothing in the cache directory but
			// the journal's records of uploads in progress.
			var left []string
			for _, p := range filesUnder(t, cacheDir, "") {
				if !strings.HasPrefix(p, filepath.Join(cacheDir, "uploads")+string(filepath.Separator)) {
					left = append(left, p)
				}
			}
			if len(left) != 0 {
				t.Errorf("files left in --cache-dir after kill -9, besides the journal: %q", left)
			}

			m = mountWS(t, ws, mountOpts{cacheDir: cacheDir})
			ws.waitNoUploads(t, rel, 30*time.Second)
			// The remount aborted what the journal named, and forgot it.
			if left := filesUnder(t, filepath.Join(cacheDir, "uploads"), ""); len(left) != 0 {
				t.Errorf("journal records left after the remount: %q", left)
			}
			wantNoneOrComplete("after a remount with the same --cache-dir")
			fi, err := os.Stat(m.path(rel))
			switch {
			case tt.overwrite:
				if err != nil || fi.Size() != int64(len(previous)) {
					t.Errorf("mount: after the remount %s: %v, want the previous version's %d bytes", rel, statSize(fi, err), len(previous))
				}
			case err == nil && fi.Size() != size:
				t.Errorf("mount: after the remount %s has %d bytes, want no file or all %d", rel, fi.Size(), size)
			case err != nil && !errors.Is(err, syscall.ENOENT):
				t.Errorf("mount: stat %s after the remount: %v", rel, err)
			}
			m.unmount(t)
			wantNoneOrComplete("after unmounting the remount")
		})
	}
}

// commits counts the requests that commit an object, stack-wide (the
// tests that use it run alone).
func commits() uint64 {
	c := env.stack.S3.Counts()
	return c[wsstack.OpCompleteMultipart] + c[wsstack.OpPut]
}

// TestRenameDirectoryFailure breaks a directory rename part-way: every
// file must stay reachable under its old or its new name, and the rename
// must work once the storage does.
func TestRenameDirectoryFailure(t *testing.T) {
	ws := newWorkspace(t)
	files := map[string][]byte{}
	for i := range 8 {
		rel := fmt.Sprintf("f%d.txt", i)
		if i >= 4 {
			rel = fmt.Sprintf("sub/f%d.txt", i)
		}
		files[rel] = []byte(strings.Repeat(rel, 100+i))
		ws.putObject(t, "src/"+rel, files[rel], nil)
	}
	m := mountWS(t, ws, mountOpts{})
	t.Cleanup(env.stack.S3.ClearFaults)
	env.stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpCopy, wsstack.OpUploadPartCopy}, KeyContains: ws.key("dst/sub/f5.txt"), Status: 500})
	err := within(t, 2*time.Minute, "rename while a copy fails", func() error { return os.Rename(m.path("src"), m.path("dst")) })
	wantErrno(t, "rename of a directory while copying one of its files answers 500", err, syscall.EIO)
	env.stack.S3.ClearFaults()

	reachable := func(when string, m *mount) {
		t.Helper()
		for rel, want := range files {
			old, oldOK := ws.getObject(t, "src/"+rel)
			nw, newOK := ws.getObject(t, "dst/"+rel)
			switch {
			case !oldOK && !newOK:
				t.Errorf("bucket %s: %s is lost: neither %s nor %s exists", when, rel, ws.key("src/"+rel), ws.key("dst/"+rel))
			case oldOK && !bytes.Equal(old, want):
				t.Errorf("bucket %s: %s: %s", when, ws.key("src/"+rel), diffBytes(old, want))
			case newOK && !bytes.Equal(nw, want):
				t.Errorf("bucket %s: %s: %s", when, ws.key("dst/"+rel), diffBytes(nw, want))
			}
			a, aerr := os.ReadFile(m.path("src/" + rel))
			b, berr := os.ReadFile(m.path("dst/" + rel))
			if !(aerr == nil && bytes.Equal(a, want)) && !(berr == nil && bytes.Equal(b, want)) {
				t.Errorf("mount %s: %s readable under neither name (src: %v, dst: %v)", when, rel, errOrSuccess(aerr), errOrSuccess(berr))
			}
		}
	}
	reachable("after the failed rename", m)
	// The promise is stronger than "reachable": the originals are deleted
	// only once every copy succeeded, so all are still under the old name,
	// and the log says so.
	for rel, want := range files {
		if got, ok := ws.getObject(t, "src/"+rel); !ok || !bytes.Equal(got, want) {
			t.Errorf("bucket after the failed rename: %s is no longer under the old name", ws.key("src/"+rel))
		}
	}
	if log := m.readLog(t); !strings.Contains(log, "every object is still under the old name") {
		t.Errorf("the log does not say the failed rename left every object under the old name:\n%s", log)
	}
	m = m.remount(t, mountOpts{})
	reachable("after a remount", m)

	// The storage works again: what is left under src moves (to a fresh
	// name: dst may hold part of the tree now, and a rename onto a
	// non-empty directory fails).
	if _, err := os.Stat(m.path("src")); err != nil {
		t.Fatalf("stat src after the failed rename: %v", err)
	}
	if err := os.Rename(m.path("src"), m.path("again")); err != nil {
		t.Fatalf("rename src again once copies work: %v", err)
	}
	if left := ws.listKeys(t, "src/"); len(left) > 0 {
		t.Errorf("bucket: keys left under src/ after the second rename: %q", left)
	}
	for rel, want := range files {
		got, ok := ws.getObject(t, "again/"+rel)
		if !ok {
			got, ok = ws.getObject(t, "dst/"+rel)
		}
		if !ok {
			t.Errorf("bucket: %s is under neither again/ nor dst/ after the second rename", rel)
		} else if d := diffBytes(got, want); d != "" {
			t.Errorf("bucket: %s after the second rename: %s", rel, d)
		}
	}
}

// TestUploadRetriedAtUnmount: a file whose upload failed and that no
// handle holds any more is tried once more at unmount; if that fails too,
// mount-ws says so in its log and exits non-zero.
func TestUploadRetriedAtUnmount(t *testing.T) {
	tests := []struct {
		name   string
		heal   bool // the storage works again before the unmount
		exitOK bool
	}{
		{"storage back before the unmount", true, true},
		{"storage still failing at the unmount", false, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := newWorkspace(t)
			rel := "unsaved.bin"
			m := mountWS(t, ws, mountOpts{})
			t.Cleanup(env.stack.S3.ClearFaults)
			data, _ := io.ReadAll(detdata.New(uint64(900+i), 2*mib))
			f, err := os.Create(m.path(rel))
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			if _, err := f.Write(data); err != nil {
				t.Fatalf("write: %v", err)
			}
			env.stack.S3.Inject(wsstack.S3Fault{
				Ops:         []wsstack.Op{wsstack.OpPut, wsstack.OpUploadPart, wsstack.OpCompleteMultipart},
				KeyContains: ws.key(rel),
				Status:      500,
			})
			err = within(t, 2*time.Minute, "close while uploads fail", f.Close)
			wantErrno(t, "close while every upload request answers 500", err, syscall.EIO)
			if tt.heal {
				env.stack.S3.ClearFaults()
			}
			// Unmount at once, well before the background retry (15 s).
			exit := m.stop(t)
			env.stack.S3.ClearFaults()
			if tt.exitOK {
				if exit != nil {
					t.Errorf("mount-ws exited with %v after uploading the file at unmount, want exit status 0", exit)
				}
				ws.wantObject(t, rel, data)
				return
			}
			if exit == nil {
				t.Errorf("mount-ws exited 0 although %s was never uploaded, want a non-zero exit", rel)
			}
			ws.wantNoObject(t, rel)
			if log, _ := os.ReadFile(m.logPath); !strings.Contains(string(log), rel) {
				t.Errorf("the mount-ws log does not name the unsaved file %s", rel)
			}
		})
	}
}

// TestBackgroundRetry checks the promise that a failed upload is retried in
// the background, with nothing touching the file, once the storage works
// again: within the longest delay between two attempts (8 retry
// intervals); and that a file deleted meanwhile is never uploaded.
func TestBackgroundRetry(t *testing.T) {
	const interval = time.Second
	ws := newWorkspace(t)
	m := mountWS(t, ws, mountOpts{extra: []string{"--upload-retry-interval", interval.String()}})
	t.Cleanup(env.stack.S3.ClearFaults)
	env.stack.S3.Inject(wsstack.S3Fault{
		Ops:         []wsstack.Op{wsstack.OpPut},
		KeyContains: ws.key("retry-"),
		Status:      500,
	})
	kept := []byte("saved by the background retry\n")
	deleted := []byte("deleted before the storage came back\n")
	for _, c := range []struct {
		rel  string
		data []byte
	}{{"retry-kept.txt", kept}, {"retry-deleted.txt", deleted}} {
		err := within(t, 2*time.Minute, "write while uploads fail", func() error {
			return os.WriteFile(m.path(c.rel), c.data, 0o644)
		})
		wantErrno(t, "close while every PUT answers 500", err, syscall.EIO)
	}
	if err := os.Remove(m.path("retry-deleted.txt")); err != nil {
		t.Fatalf("unlink after the failed close: %v", err)
	}
	env.stack.S3.ClearFaults()

	// Nothing touches the mount now. The object appears by the next
	// attempt, at most vfs.MaxBackoff intervals after the last failed one;
	// two more allow for a slow machine without letting a retry that never
	// comes pass.
	deadline := time.Now().Add((vfs.MaxBackoff + 2) * interval)
	for {
		if _, ok := ws.getObject(t, "retry-kept.txt"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retry-kept.txt not in the bucket %s after the storage came back (retry interval %s)", (vfs.MaxBackoff+2)*interval, interval)
		}
		time.Sleep(interval / 10)
	}
	ws.wantObject(t, "retry-kept.txt", kept)
	// The pass that saved retry-kept.txt also went over the deleted file;
	// and the unmount makes one last pass over whatever is still queued.
	m.unmount(t)
	ws.wantNoObject(t, "retry-deleted.txt")
}

// TestExpiredCredentialsWhileAPIDown checks the README's promise for
// credentials that expire while the API is unreachable: an operation waits
// --credentials-wait for fresh ones, then fails with EIO; one warning says
// it is waiting; and once the API answers again, operations work and one
// line says so.
func TestExpiredCredentialsWhileAPIDown(t *testing.T) {
	const ttl, wait = 2 * time.Second, 2 * time.Second
	env.stack.API.SetTTL(ttl)
	t.Cleanup(func() { env.stack.ClearFaults(); env.stack.API.SetTTL(time.Hour) })
	ws := newWorkspace(t)
	for _, rel := range []string{"a.txt", "b.txt"} {
		ws.putObject(t, rel, []byte("content of "+rel), nil)
	}
	m := mountWS(t, ws, mountOpts{extra: []string{"--credentials-wait", wait.String(), "--metadata-ttl", "0"}})

	if err := env.stack.TakeAPIDown(10 * time.Minute); err != nil {
		t.Fatal(err)
	}
	// Every credential minted so far expires within ttl (plus the
	// second the expiry is rounded to); wait that out.
	time.Sleep(ttl + 1500*time.Millisecond)
	start := time.Now()
	_, err := os.ReadFile(m.path("a.txt"))
	waited := time.Since(start)
	wantErrno(t, "read with expired credentials and the API down", err, syscall.EIO)
	// Bounds with room for a slow machine; the upper one catches a wait
	// repeated by each of the SDK's retries (5 × the bound).
	if waited < wait/2 || waited > 3*wait {
		t.Errorf("the read failed after %s; it should have waited --credentials-wait (%s) for fresh credentials, once", waited, wait)
	}
	t.Logf("the read failed with EIO after %s (--credentials-wait %s)", waited.Round(time.Millisecond), wait)
	if log := m.readLog(t); !strings.Contains(log, "waiting for workspace credentials") {
		t.Errorf("no warning that operations wait for credentials in the log:\n%s", log)
	}

	env.stack.ClearFaults() // the API answers again
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := os.ReadFile(m.path("b.txt"))
		if err == nil {
			if string(got) != "content of b.txt" {
				t.Errorf("read after the API came back: %q", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reads still fail a minute after the API came back: %v", err)
		}
	}
	if log := m.readLog(t); !strings.Contains(log, "workspace credentials available again") {
		t.Errorf("no line saying credentials are back in the log:\n%s", log)
	}
}

// filesUnder lists the files under dir whose name starts with prefix; a
// missing dir has none.
func filesUnder(t *testing.T, dir, prefix string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) && p == dir {
			return filepath.SkipAll
		}
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), prefix) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	return found
}

// A file renamed over another whose original cannot be deleted after the
// copy: the target then holds the copy in the bucket, and the mount must
// read it as it is, never the copy padded to the replaced file's size
// (found by ws-soak, seed 1).
func TestRenameOverFileWhenDeleteFails(t *testing.T) {
	ws := newWorkspace(t)
	m := mountWS(t, ws, mountOpts{})
	old := bytes.Repeat([]byte("old "), 300_000) // 1.2 MB, larger than the new one
	nw := bytes.Repeat([]byte("new "), 60_000)
	for name, b := range map[string][]byte{"dst.bin": old, "src.bin": nw} {
		if err := os.WriteFile(m.path(name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(env.stack.S3.ClearFaults)
	env.stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpDelete}, KeyContains: ws.key("src.bin"), Status: 500})
	err := within(t, 2*time.Minute, "rename while the delete fails", func() error { return os.Rename(m.path("src.bin"), m.path("dst.bin")) })
	wantErrno(t, "rename whose delete of the original answers 500", err, syscall.EIO)
	env.stack.S3.ClearFaults()

	inBucket, ok := ws.getObject(t, "dst.bin")
	if !ok || !bytes.Equal(inBucket, nw) {
		t.Fatalf("bucket: dst.bin is not the copy of src.bin (present %v, %d bytes)", ok, len(inBucket))
	}
	got, err := os.ReadFile(m.path("dst.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, nw) {
		t.Errorf("mount: dst.bin reads %d bytes, want the %d of the copy the bucket holds: %s", len(got), len(nw), diffBytes(got, nw))
	}
	// The kernel is told to look the name up again once the rename has
	// returned (it cannot be told before): until then a stat may show
	// the replaced file, for a moment.
	var size int64
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		fi, err := os.Stat(m.path("dst.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if size = fi.Size(); size == int64(len(nw)) {
			break
		}
	}
	if size != int64(len(nw)) {
		t.Errorf("mount: stat dst.bin a second after the failed rename: size %d, want %d (the copy's)", size, len(nw))
	}
	if b, err := os.ReadFile(m.path("src.bin")); err != nil || !bytes.Equal(b, nw) {
		t.Errorf("mount: src.bin after the failed rename: %v, %d bytes; want it unchanged", err, len(b))
	}
}
