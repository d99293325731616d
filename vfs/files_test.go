package vfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mount-ws/bucket"
	"mount-ws/bucket/buckettest"
	"mount-ws/datacache"
)

// The files' behaviour without a mount: what the adapter's operations
// (create, write, close, release, rename, unlink, a forget) do to the
// bucket and to the retry queue, on an in-memory S3.

// testNode is a Node: a name in the tree or not, counting how often the
// kernel would have been told of changed attributes.
type testNode struct {
	mu      sync.Mutex
	key     string
	inTree  bool
	changed int
}

func (n *testNode) TreeKey() (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.inTree {
		return "", false
	}
	return n.key, true
}

func (n *testNode) Kind() uint32 { return syscall.S_IFREG }

func (n *testNode) AttrsChanged() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.changed++
}

// leave takes the node out of the tree, as a forget does.
func (n *testNode) leave() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.inTree = false
}

func (n *testNode) changes() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changed
}

// flakyStore is a bucket whose uploads fail while failing is set, and
// whose deletes of the key in noDelete fail.
type flakyStore struct {
	*bucket.Bucket
	failing  atomic.Bool
	noDelete string
}

func (s *flakyStore) Delete(ctx context.Context, key string) error {
	if key == s.noDelete {
		return errInjected
	}
	return s.Bucket.Delete(ctx, key)
}

func (s *flakyStore) Upload(ctx context.Context, key string, src io.ReaderAt, size int64, meta bucket.Meta, opts bucket.UploadOptions) (bucket.Object, error) {
	if s.failing.Load() {
		return bucket.Object{}, errInjected
	}
	return s.Bucket.Upload(ctx, key, src, size, meta, opts)
}

func (s *flakyStore) StartStream(ctx context.Context, key string, meta bucket.Meta, opts bucket.UploadOptions) (*bucket.Stream, error) {
	if s.failing.Load() {
		return nil, errInjected
	}
	return s.Bucket.StartStream(ctx, key, meta, opts)
}

type filesEnv struct {
	files   *Files
	store   *flakyStore
	clock   *fakeClock
	handles map[*File]*Handle // the handle each created file was opened with
}

func newFilesEnv(t *testing.T) *filesEnv {
	t.Helper()
	b, _ := buckettest.NewFake(t)
	store := &flakyStore{Bucket: b}
	log := slog.New(slog.DiscardHandler)
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	area := &StagingArea{
		Store: store, Dir: t.TempDir(), Space: NewSpace(1 << 30), Budget: NewBudget(64 << 20),
		Journal: NewJournal("", log), PartSize: testPart, Concurrency: 4, Log: log,
	}
	files := NewFiles(FilesConfig{
		Store: store, Stage: area, Dirs: NewDirCaches(MaxIdleCacheEntries, clock.now),
		Bodies: NewBodies(BodiesLimit, time.Minute, clock.now), Budget: area.Budget,
		MetadataTTL: time.Minute, RetryInterval: time.Second, Clock: clock.now, Log: log,
	})
	files.writeBack.manual = true // the test runs the retries (runRetries)
	t.Cleanup(func() { files.Close(context.Background()) })
	return &filesEnv{files: files, store: store, clock: clock, handles: make(map[*File]*Handle)}
}

// create creates key as a program would, with one handle open for
// writing, and writes data.
func (e *filesEnv) create(t *testing.T, key string, data string) (*File, *testNode) {
	t.Helper()
	node := &testNode{key: key, inTree: true}
	h, err := e.files.Created(key, node, Entry{Meta: true}, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.files.WriteAt(t.Context(), h, []byte(data), 0); err != nil {
		t.Fatal(err)
	}
	e.handles[h.File()] = h
	return h.File(), node
}

// close is close(2) of f's handle: it saves f.
func (e *filesEnv) close(t *testing.T, f *File) error {
	return e.files.Flush(t.Context(), e.handles[f])
}

// release is the kernel's release of f's handle, after its close.
func (e *filesEnv) release(f *File) { e.files.CloseHandle(e.handles[f]) }

// body is what the bucket holds at key, "" with ok false if nothing.
func (e *filesEnv) body(t *testing.T, key string) (string, bool) {
	t.Helper()
	r, err := e.store.Get(t.Context(), key, 0, -1, "")
	if err != nil {
		return "", false
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(data), true
}

// failClose closes f's last handle with its upload failing: its data is
// queued for a retry, which will succeed.
func (e *filesEnv) failClose(t *testing.T, f *File) {
	t.Helper()
	e.store.failing.Store(true)
	defer e.store.failing.Store(false)
	if err := e.close(t, f); err == nil {
		t.Fatal("the save succeeded with uploads failing")
	}
	e.release(f)
}

// runRetries lets the retry interval pass, and runs what is due.
func (e *filesEnv) runRetries(t *testing.T) {
	e.clock.advance(time.Minute)
	e.files.writeBack.RunDue(t.Context())
}

func unsavedKeys(fs *Files) []string {
	var keys []string
	for _, u := range fs.Unsaved() {
		keys = append(keys, u.Key)
	}
	return keys
}

// TestFilesSaveAtClose: a created file is in the bucket once its close
// saved it; the kernel is told its attributes changed; the last release
// drops the staging copy.
func TestFilesSaveAtClose(t *testing.T) {
	e := newFilesEnv(t)
	f, node := e.create(t, "d/a.txt", "hello")
	if _, ok := e.body(t, "d/a.txt"); ok {
		t.Fatal("the object exists before the close")
	}
	if got, ok := f.LocalEntry(); !ok || got.Size != 5 {
		t.Fatalf("local entry before the save: %+v %v, want size 5", got, ok)
	}
	if err := e.close(t, f); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.body(t, "d/a.txt"); got != "hello" {
		t.Fatalf("bucket holds %q, want hello", got)
	}
	if node.changes() != 1 {
		t.Errorf("kernel told %d times of changed attributes, want 1", node.changes())
	}
	if _, ok := f.LocalEntry(); ok {
		t.Error("a saved file still says S3 may not know it")
	}
	e.release(f)
	if f.staged() != nil {
		t.Error("the last release kept a staging copy with nothing unsaved")
	}
	if c := e.files.Counts(); c.Saves != 1 || c.OpenHandles != 0 {
		t.Errorf("counts %+v, want 1 save and no handle", c)
	}
}

// TestFilesFailedSaveIsRetried: a close whose upload fails reports it,
// and the data stays queued through the release until a retry saves it.
func TestFilesFailedSaveIsRetried(t *testing.T) {
	e := newFilesEnv(t)
	f, _ := e.create(t, "a.txt", "kept")
	e.store.failing.Store(true)
	if err := e.close(t, f); err == nil {
		t.Fatal("the save succeeded with uploads failing")
	}
	e.release(f)
	if got := unsavedKeys(e.files); len(got) != 1 || got[0] != "a.txt" {
		t.Fatalf("unsaved %v, want [a.txt]", got)
	}
	e.runRetries(t) // still failing
	if _, ok := e.body(t, "a.txt"); ok {
		t.Fatal("saved while uploads fail")
	}
	e.store.failing.Store(false)
	e.runRetries(t)
	if got, _ := e.body(t, "a.txt"); got != "kept" {
		t.Fatalf("bucket holds %q after the retry, want kept", got)
	}
	if got := unsavedKeys(e.files); len(got) != 0 {
		t.Fatalf("unsaved %v after the retry, want none", got)
	}
	if f.staged() != nil {
		t.Error("the retry kept the staging copy of a file no handle has open")
	}
}

// TestFilesOrphanAdopted: a file whose node the kernel forgot with its
// upload queued still answers for its name, and the next node of the name
// takes its File, unsaved data and all.
func TestFilesOrphanAdopted(t *testing.T) {
	e := newFilesEnv(t)
	f, node := e.create(t, "d/a.txt", "unsaved")
	e.failClose(t, f)
	if _, ok := e.files.OrphanEntry("d/a.txt"); ok {
		t.Fatal("a file still in the tree is taken for an orphan")
	}
	node.leave()
	if got, ok := e.files.OrphanEntry("d/a.txt"); !ok || got.Size != 7 {
		t.Fatalf("orphan entry %+v %v, want size 7", got, ok)
	}
	if in := e.files.OrphansIn("d"); len(in) != 1 || in["a.txt"].Size != 7 {
		t.Fatalf("orphans in d: %v, want a.txt", in)
	}
	fresh := &testNode{key: "d/a.txt", inTree: true}
	got, ok := e.files.Adopt("d/a.txt", fresh)
	if !ok || got != f {
		t.Fatalf("adopt gave %p %v, want the orphan's file %p", got, ok, f)
	}
	if _, ok := e.files.Adopt("d/a.txt", &testNode{key: "d/a.txt", inTree: true}); ok {
		t.Fatal("a file was adopted twice")
	}
	e.runRetries(t)
	if body, _ := e.body(t, "d/a.txt"); body != "unsaved" {
		t.Fatalf("bucket holds %q, want unsaved", body)
	}
	if fresh.changes() == 0 || node.changes() != 0 {
		t.Errorf("kernel told through the old node %d times, the new %d: want the new node only", node.changes(), fresh.changes())
	}
}

// TestFilesCreateDropsOrphan: a file created under the name of an orphan
// replaces it: the orphan's retry never lands over the new file.
func TestFilesCreateDropsOrphan(t *testing.T) {
	e := newFilesEnv(t)
	f, node := e.create(t, "a.txt", "old")
	e.failClose(t, f)
	node.leave()
	g, _ := e.create(t, "a.txt", "new")
	if err := e.close(t, g); err != nil {
		t.Fatal(err)
	}
	e.runRetries(t)
	if body, _ := e.body(t, "a.txt"); body != "new" {
		t.Fatalf("bucket holds %q, want new", body)
	}
}

// TestFilesFailedCreateKeepsOrphan: a create under an orphan's name that
// fails (no staging copy can be made) leaves the orphan's unsaved data
// queued; it is saved later.
func TestFilesFailedCreateKeepsOrphan(t *testing.T) {
	e := newFilesEnv(t)
	f, node := e.create(t, "a.txt", "orphan's")
	e.failClose(t, f)
	node.leave()
	dir := e.files.stage.Dir
	e.files.stage.Dir = filepath.Join(e.files.stage.Dir, "a.txt-staging", "sub") // under a file: cannot be made
	if err := os.WriteFile(filepath.Join(dir, "a.txt-staging"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.files.Created("a.txt", &testNode{key: "a.txt", inTree: true}, Entry{Meta: true}, false); err == nil {
		t.Fatal("created a file with no staging directory")
	}
	e.files.stage.Dir = dir
	e.runRetries(t)
	if body, _ := e.body(t, "a.txt"); body != "orphan's" {
		t.Fatalf("bucket holds %q, want the orphan's data", body)
	}
}

// TestFilesGoneNotSaved: a deleted file's queued data is never uploaded.
func TestFilesGoneNotSaved(t *testing.T) {
	e := newFilesEnv(t)
	f, _ := e.create(t, "a.txt", "doomed")
	e.store.failing.Store(true)
	_ = e.close(t, f)
	held := e.files.Hold(f)
	held.Gone()
	held.Release()
	if got := unsavedKeys(e.files); len(got) != 0 {
		t.Fatalf("unsaved %v once deleted, want none", got)
	}
	e.release(f)
	e.store.failing.Store(false)
	e.runRetries(t)
	if _, ok := e.body(t, "a.txt"); ok {
		t.Fatal("a deleted file was uploaded")
	}
}

// TestFilesRename: a file renamed with unsaved content goes to the new
// name whole; its queued retry, moved with a directory's rename, lands
// under the new name only.
func TestFilesRename(t *testing.T) {
	t.Run("unsaved content", func(t *testing.T) {
		e := newFilesEnv(t)
		f, _ := e.create(t, "a.txt", "moving")
		got, copied, err := e.files.RenameFile(t.Context(), f, "a.txt", "b.txt", f.Attr())
		if err != nil || !copied {
			t.Fatalf("rename: copied %v, %v", copied, err)
		}
		if body, _ := e.body(t, "b.txt"); body != "moving" || got.Size != 6 {
			t.Fatalf("b.txt holds %q (entry size %d), want moving", body, got.Size)
		}
		if _, ok := f.LocalEntry(); ok {
			t.Error("the renamed file still says S3 may not know it")
		}
	})
	t.Run("queued, directory renamed", func(t *testing.T) {
		e := newFilesEnv(t)
		f, node := e.create(t, "d/a.txt", "queued")
		e.failClose(t, f)
		node.leave() // an orphan: HoldTree finds it by the queue
		held, err := e.files.HoldTree(t.Context(), "d", nil)
		if err != nil {
			ReleaseAll(held)
			t.Fatal(err)
		}
		if len(held) != 1 {
			t.Fatalf("held %d files, want the orphan", len(held))
		}
		// HoldTree saved it before the copies.
		if body, _ := e.body(t, "d/a.txt"); body != "queued" {
			t.Fatalf("d/a.txt holds %q before the copies, want queued", body)
		}
		e.files.Moved("d", "e")
		ReleaseAll(held)
		e.runRetries(t)
		if got := unsavedKeys(e.files); len(got) != 0 {
			t.Fatalf("unsaved %v, want none", got)
		}
	})
	t.Run("queued and still written, directory renamed", func(t *testing.T) {
		e := newFilesEnv(t)
		f, _ := e.create(t, "d/a.txt", "written")
		e.store.failing.Store(true)
		_ = e.files.Save(t.Context(), f) // an fsync that failed
		e.store.failing.Store(false)
		held, err := e.files.HoldTree(t.Context(), "d", []*File{f})
		if err != nil {
			ReleaseAll(held)
			t.Fatal(err)
		}
		// Not saved by HoldTree: a writer has it open, and saves it at
		// its close, under the new name.
		e.files.Moved("d", "e")
		ReleaseAll(held)
		if err := e.close(t, f); err != nil {
			t.Fatal(err)
		}
		if body, _ := e.body(t, "e/a.txt"); body != "written" {
			t.Fatalf("e/a.txt holds %q, want written", body)
		}
		if _, ok := e.body(t, "d/a.txt"); ok {
			t.Fatal("the save landed under the old name")
		}
	})
}

// TestFilesRevalidate: an open asks S3, takes another program's new
// version, and tells the kernel; an unchanged object tells it nothing.
func TestFilesRevalidate(t *testing.T) {
	e := newFilesEnv(t)
	ctx := t.Context()
	o, err := e.store.Put(ctx, "a.txt", bytes.NewReader([]byte("one")), 3, bucket.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	node := &testNode{key: "a.txt", inTree: true}
	f := e.files.NewFile(node, EntryFromObject(o))
	if got, err := e.files.Revalidate(ctx, f); err != nil || got.ETag != o.ETag || node.changes() != 0 {
		t.Fatalf("unchanged: %+v %v, %d notices", got, err, node.changes())
	}
	o2, err := e.store.Put(ctx, "a.txt", bytes.NewReader([]byte("three")), 5, bucket.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.files.Revalidate(ctx, f)
	if err != nil || got.ETag != o2.ETag || got.Size != 5 {
		t.Fatalf("replaced: %+v %v, want the new version", got, err)
	}
	if node.changes() != 1 {
		t.Errorf("kernel told %d times, want 1", node.changes())
	}
}

// read reads all of h's file from off through Files.Read, as the kernel
// would, 1 MiB at a time.
func (e *filesEnv) read(t *testing.T, h *Handle) (string, error) {
	t.Helper()
	var out []byte
	p := make([]byte, 1<<20)
	for off := int64(0); ; {
		n, s, err := e.files.Read(t.Context(), h, p, off)
		if s != nil {
			n = s.CopyTo(p)
			s.Release()
		}
		out = append(out, p[:n]...)
		off += int64(n)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || err == nil && n == 0 {
			return string(out), nil
		}
		if err != nil {
			return string(out), err
		}
	}
}

// TestFilesRead: a handle reads the version it opened. An unchecked one
// (opened on a listing's word) that finds the object replaced before it
// served anything reads the new version; once it served data, a
// replacement is an error, not a mix of two versions.
func TestFilesRead(t *testing.T) {
	e := newFilesEnv(t)
	ctx := t.Context()
	put := func(body string) Entry {
		t.Helper()
		o, err := e.store.Put(ctx, "a.txt", bytes.NewReader([]byte(body)), int64(len(body)), bucket.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		return EntryFromObject(o)
	}
	open := func(f *File, seen Entry) *Handle {
		t.Helper()
		h, _, staged, err := e.files.Open(ctx, f, seen, OpenMode{Unchecked: true})
		if err != nil || staged {
			t.Fatalf("open: staged %v, %v", staged, err)
		}
		t.Cleanup(func() { e.files.CloseHandle(h) })
		return h
	}
	old := put("old version")
	f := e.files.NewFile(&testNode{key: "a.txt", inTree: true}, old)
	put("the new version")
	if got, err := e.read(t, open(f, old)); err != nil || got != "the new version" {
		t.Fatalf("unchecked handle, replaced before its first read: %q, %v; want the new version", got, err)
	}

	// Large enough that the first read's fetch does not hold it all.
	cur := put(strings.Repeat("served ", 2<<20))
	h := open(f, cur)
	p := make([]byte, 3)
	if _, s, err := e.files.Read(ctx, h, p, 0); err != nil || s.Len() != 3 {
		t.Fatalf("first read: %v", err)
	} else {
		s.Release()
	}
	put("replaced after serving")
	if got, err := e.read(t, h); !errors.Is(err, bucket.ErrPrecondition) {
		t.Fatalf("read after the object was replaced under a handle that served data: %d bytes, %v; want ErrPrecondition", len(got), err)
	}
}

// TestFilesDataCache: with a data cache, a second handle reads the same
// version from local disk, without fetching; a new version is fetched.
func TestFilesDataCache(t *testing.T) {
	e := newFilesEnv(t)
	c, err := datacache.Open(t.TempDir(), "vfs/test", 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	e.files.cache = c
	ctx := t.Context()
	body := bytes.Repeat([]byte("0123456789abcdef"), 3*datacache.BlockSize/16+100)
	o, err := e.store.Put(ctx, "big.bin", bytes.NewReader(body), int64(len(body)), bucket.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	f := e.files.NewFile(&testNode{key: "big.bin", inTree: true}, EntryFromObject(o))
	readOnce := func() {
		t.Helper()
		h, _, _, err := e.files.Open(ctx, f, EntryFromObject(o), OpenMode{})
		if err != nil {
			t.Fatal(err)
		}
		defer e.files.CloseHandle(h)
		if got, err := e.read(t, h); err != nil || got != string(body) {
			t.Fatalf("read %d bytes, %v; want the object's %d", len(got), err, len(body))
		}
	}
	readOnce()
	first := e.files.Counts()
	if first.DataCacheMisses != 4 || first.DataCacheHits != 0 {
		t.Fatalf("first read: %d blocks fetched, %d from the cache; want 4 and 0", first.DataCacheMisses, first.DataCacheHits)
	}
	readOnce()
	second := e.files.Counts()
	if second.DataCacheMisses != first.DataCacheMisses || second.DataCacheHits == 0 {
		t.Fatalf("second read: %d more blocks fetched, %d from the cache; want none and some", second.DataCacheMisses-first.DataCacheMisses, second.DataCacheHits)
	}
}

// TestFilesHoldTreeWaitsForBusyFile: HoldTree waits for a file whose io
// lock another operation holds (a save under way), holding none of the
// others meanwhile, and then holds them all.
func TestFilesHoldTreeWaitsForBusyFile(t *testing.T) {
	e := newFilesEnv(t)
	a, _ := e.create(t, "d/a.txt", "a")
	b, _ := e.create(t, "d/b.txt", "b")
	b.lockIO() // busy
	done := make(chan []Held)
	go func() {
		held, err := e.files.HoldTree(context.Background(), "d", []*File{a, b})
		if err != nil {
			t.Error(err)
		}
		done <- held
	}()
	// While it waits for b, a stays free for others (were it held, this
	// would hang; the goroutine may not have reached the wait yet, so a
	// pass does not prove it).
	a.lockIO()
	a.unlockIO()
	b.unlockIO()
	held := <-done
	if len(held) != 2 {
		t.Fatalf("held %d files, want 2", len(held))
	}
	if a.act.io.TryLock() || b.act.io.TryLock() {
		t.Fatal("HoldTree returned without holding every file")
	}
	ReleaseAll(held)
}
