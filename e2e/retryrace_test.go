package e2e

import (
	"bytes"
	"os"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"mount-ws/internal/wsstack"
)

// These tests pin down what a queued upload (a file whose close failed,
// retried in the background) must never do: land over a rename that
// replaced the file, vanish because an unlink of it failed, or be undone
// by, or undo, a new node the kernel made for the same name. Each was
// found by make soak (docs/RELIABILITY.md, findings 2 to 4).

// failClose writes data to rel while every PUT of it answers 500, and
// checks that close reports EIO: the data is then queued for retry.
func failClose(t *testing.T, ws *workspace, m *mount, rel string, data []byte) {
	t.Helper()
	env.stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpPut}, KeyContains: ws.key(rel), Status: 500})
	err := within(t, 2*time.Minute, "write while uploads fail", func() error {
		return os.WriteFile(m.path(rel), data, 0o644)
	})
	wantErrno(t, "close while every PUT of "+rel+" answers 500", err, syscall.EIO)
	env.stack.S3.ClearFaults()
}

// TestRenameWaitsForRetryInFlight: a rename over a file whose retried
// upload is in flight must not let that upload land after its copy.
func TestRenameWaitsForRetryInFlight(t *testing.T) {
	ws := newWorkspace(t)
	source := []byte("the renamed file\n")
	ws.putObject(t, "src.txt", source, nil)
	m := mountWS(t, ws, mountOpts{extra: []string{"--upload-retry-interval", "200ms"}})
	t.Cleanup(env.stack.S3.ClearFaults)
	failClose(t, ws, m, "target.txt", []byte("the replaced file's unsaved data\n"))

	// Hold the next retry of target.txt's PUT in flight.
	hold := make(chan struct{})
	released := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(released)
	putArrived, copySeen := make(chan struct{}), make(chan struct{})
	env.stack.S3.Inject(wsstack.S3Fault{
		Ops: []wsstack.Op{wsstack.OpPut}, KeyContains: ws.key("target.txt"), Times: 1,
		Hold: hold, Matched: func(wsstack.Op, string) { close(putArrived) },
	})
	select {
	case <-putArrived:
	case <-time.After(time.Minute):
		t.Fatal("no retry of target.txt's upload within a minute (retry interval 200ms)")
	}
	// Watch for the rename's copy: with the retry in flight, it must wait.
	var seen sync.Once
	env.stack.S3.Inject(wsstack.S3Fault{
		Ops: []wsstack.Op{wsstack.OpCopy}, KeyContains: ws.key("target.txt"),
		Matched: func(wsstack.Op, string) { seen.Do(func() { close(copySeen) }) },
	})
	renamed := make(chan error, 1)
	go func() { renamed <- os.Rename(m.path("src.txt"), m.path("target.txt")) }()
	select {
	case <-copySeen:
		t.Error("the rename copied over target.txt while a retried upload of it was in flight")
	case err := <-renamed:
		t.Errorf("the rename returned (%v) while a retried upload of its target was in flight", err)
		renamed <- err
	case <-time.After(2 * time.Second):
		// Still waiting for the upload, as it should: a broken build
		// copies at once, well within this.
	}
	released()
	if err := <-renamed; err != nil {
		t.Fatalf("rename: %v", err)
	}
	m.unmount(t) // one last retry pass over whatever is still queued
	ws.wantObject(t, "target.txt", source)
	ws.wantNoObject(t, "src.txt")
}

// TestFailedUnlinkKeepsUnsavedData: an unlink that fails leaves the file,
// and its queued upload, as they were.
func TestFailedUnlinkKeepsUnsavedData(t *testing.T) {
	ws := newWorkspace(t)
	m := mountWS(t, ws, mountOpts{extra: []string{"--upload-retry-interval", "1h"}})
	t.Cleanup(env.stack.S3.ClearFaults)
	data := []byte("kept although its unlink failed\n")
	failClose(t, ws, m, "kept.txt", data)
	env.stack.S3.Inject(wsstack.S3Fault{Ops: []wsstack.Op{wsstack.OpDelete}, KeyContains: ws.key("kept.txt"), Status: 500})
	err := within(t, 2*time.Minute, "unlink while deletes fail", func() error { return os.Remove(m.path("kept.txt")) })
	wantErrno(t, "unlink whose DELETE answers 500", err, syscall.EIO)
	env.stack.S3.ClearFaults()
	if got, err := os.ReadFile(m.path("kept.txt")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read after the failed unlink: %v, %q; want %q", err, got, data)
	}
	m.unmount(t) // the retry at unmount saves it
	ws.wantObject(t, "kept.txt", data)
}

// TestForgottenFileKeepsItsUnsavedData: the kernel may forget a file whose
// upload is queued (drop_caches does it at once); the next lookup of its
// name must show the unsaved data, and a write through the new inode must
// build on it and not be undone by the old one's retry.
func TestForgottenFileKeepsItsUnsavedData(t *testing.T) {
	requireRoot(t) // drop_caches is the only way to make the kernel forget an inode now
	ws := newWorkspace(t)
	ws.putObject(t, "old.txt", []byte("the version in the bucket\n"), nil)
	m := mountWS(t, ws, mountOpts{extra: []string{"--upload-retry-interval", "1h"}})
	t.Cleanup(env.stack.S3.ClearFaults)
	unsaved := []byte("unsaved, over an existing object\n")
	fresh := []byte("unsaved, never in the bucket\n")
	failClose(t, ws, m, "old.txt", unsaved)
	failClose(t, ws, m, "fresh.txt", fresh)
	forgotten := m.status(t).Forgotten
	// drop_caches gives a dentry used lately a second chance (it only
	// loses its "referenced" mark): the later writes free what the first
	// spared. (A stat to check would use them again.)
	for range 3 {
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
			t.Fatalf("drop the kernel's dentries and inodes: %v", err)
		}
	}
	// Both files' nodes (the mount holds no others but the root, which is
	// never forgotten); FORGET requests may trail the drop a little.
	deadline := time.Now().Add(10 * time.Second)
	for m.status(t).Forgotten < forgotten+2 {
		if time.Now().After(deadline) {
			t.Fatalf("the kernel forgot %d of the 2 files across drop_caches, so this test cannot check anything", m.status(t).Forgotten-forgotten)
		}
		time.Sleep(50 * time.Millisecond)
	}

	names, err := readDirNames(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, "fresh.txt") {
		t.Errorf("ls after the kernel forgot fresh.txt: %v; it must still be listed", names)
	}
	for rel, want := range map[string][]byte{"old.txt": unsaved, "fresh.txt": fresh} {
		fi, err := os.Stat(m.path(rel))
		if err != nil {
			t.Fatalf("stat %s after the kernel forgot it: %v", rel, err)
		}
		if fi.Size() != int64(len(want)) {
			t.Errorf("stat %s: size %d, want %d (the unsaved data's)", rel, fi.Size(), len(want))
		}
		if got, err := os.ReadFile(m.path(rel)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("read %s: %v, %q; want %q", rel, err, got, want)
		}
	}
	more := []byte("appended through the new inode\n")
	f, err := os.OpenFile(m.path("old.txt"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(more); err != nil {
		t.Fatalf("append to the forgotten file: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after the append: %v", err)
	}
	m.unmount(t)
	ws.wantObject(t, "old.txt", append(unsaved, more...))
	ws.wantObject(t, "fresh.txt", fresh)
}

// TestDirectoryRenameCarriesQueuedFile: renaming a directory saves the
// queued data of its files first, so the copies carry it and no retry
// can land under the old name afterwards.
func TestDirectoryRenameCarriesQueuedFile(t *testing.T) {
	ws := newWorkspace(t)
	ws.putObject(t, "dir/other.txt", []byte("saved long ago\n"), nil)
	m := mountWS(t, ws, mountOpts{extra: []string{"--upload-retry-interval", "1h"}})
	t.Cleanup(env.stack.S3.ClearFaults)
	data := []byte("queued when the directory was renamed\n")
	failClose(t, ws, m, "dir/queued.txt", data)
	if err := os.Rename(m.path("dir"), m.path("moved")); err != nil {
		t.Fatalf("rename of the directory: %v", err)
	}
	// Before any retry could run (the interval is an hour):
	ws.wantObject(t, "moved/queued.txt", data)
	ws.wantObject(t, "moved/other.txt", []byte("saved long ago\n"))
	m.unmount(t)
	if keys := ws.listKeys(t, "dir/"); len(keys) != 0 {
		t.Errorf("objects under the directory's old name after the unmount: %v", keys)
	}
	ws.wantObject(t, "moved/queued.txt", data)
}
