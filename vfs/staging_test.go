package vfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"mount-ws/bucket"
	"mount-ws/bucket/buckettest"
	"mount-ws/internal/detdata"
	"mount-ws/vfs/vfstest"
)

// The staging copy's behaviour, on an in-memory S3 (buckettest.NewFake, which
// buckettest.Run holds to S3's behaviour): what each kind of change sends
// and fetches, and what the object holds after a save. No FUSE, no gateway.

const (
	testPart = vfstest.PartSize
	slack    = vfstest.Slack
)

type stagingEnv struct {
	area *StagingArea
	b    *bucket.Bucket
	net  *vfstest.Traffic
	// rawPut stores an object as another program would.
	rawPut func(key string, data []byte)
}

func newStagingEnv(t *testing.T, limit int64) *stagingEnv {
	t.Helper()
	cfg, rawPut := buckettest.NewFakeConfig(t)
	net := &vfstest.Traffic{}
	cfg.Observer = net
	b, err := bucket.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	return &stagingEnv{
		area: &StagingArea{
			Store: b, Dir: t.TempDir(), Space: NewSpace(limit), Budget: NewBudget(64 << 20),
			Journal: NewJournal("", log), PartSize: testPart, Concurrency: 4, Log: log,
		},
		b: b, net: net, rawPut: rawPut,
	}
}

// object stores size bytes of deterministic content as key and returns
// them and the object.
func (e *stagingEnv) object(t *testing.T, key string, size int64) ([]byte, bucket.Object) {
	t.Helper()
	data := make([]byte, size)
	if _, err := detdata.New(uint64(size), size).ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	o, err := e.b.Put(t.Context(), key, bytes.NewReader(data), size, bucket.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	e.net.Reset()
	return data, o
}

// copyOf makes a staging copy of the object o at key, closed by the test's
// cleanup.
func (e *stagingEnv) copyOf(t *testing.T, key string, o bucket.Object) *Staging {
	t.Helper()
	st, err := e.area.Based(key, o.ETag, o.Size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// empty makes a copy of a new, empty file, closed by the test's cleanup.
func (e *stagingEnv) empty(t *testing.T) *Staging {
	t.Helper()
	st, err := e.area.Empty(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// write writes p at off (appending when off < 0) and fails the test on
// an error.
func write(t *testing.T, st *Staging, p []byte, off int64) {
	t.Helper()
	if _, _, err := st.Write(t.Context(), p, max(off, 0), off < 0, named("f")); err != nil {
		t.Fatalf("write %d bytes at %d: %v", len(p), off, err)
	}
}

// save saves st as key and fails the test on an error.
func save(t *testing.T, st *Staging, key string) {
	t.Helper()
	if _, _, err := st.Save(t.Context(), key, bucket.Meta{User: map[string]string{}}); err != nil {
		t.Fatalf("save %s: %v", key, err)
	}
}

func (e *stagingEnv) content(t *testing.T, key string) []byte {
	t.Helper()
	body, err := e.b.Get(t.Context(), key, 0, -1, "")
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer body.Close()
	got, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func named(key string) Namer {
	return func() (string, bucket.Meta) { return key, bucket.Meta{User: map[string]string{}} }
}

func checkSame(t *testing.T, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("object has %d bytes, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("object differs at byte %d of %d", i, len(got))
		}
	}
}

// stagingFile applies vfstest's edits to a staging copy.
type stagingFile struct {
	ctx context.Context
	st  *Staging
}

func (f stagingFile) WriteAt(p []byte, off int64) error {
	_, _, err := f.st.Write(f.ctx, p, off, false, named("f"))
	return err
}

func (f stagingFile) Append(p []byte) error {
	_, _, err := f.st.Write(f.ctx, p, 0, true, named("f"))
	return err
}

func (f stagingFile) Truncate(size int64) error { return f.st.Resize(size) }

// TestStagingSavesOnlyWhatChanged edits a copy of an object in the ways
// programs do (vfstest.Edits, which fs runs through a mount too) and
// checks, for each, the object after the save and how many bytes went
// each way.
func TestStagingSavesOnlyWhatChanged(t *testing.T) {
	for _, tt := range vfstest.Edits() {
		t.Run(tt.Name, func(t *testing.T) {
			e := newStagingEnv(t, 64<<20)
			data := tt.Content()
			var st *Staging
			if tt.Size == 0 {
				st = e.empty(t)
			} else {
				var o bucket.Object
				data, o = e.object(t, "f", tt.Size)
				st = e.copyOf(t, "f", o)
			}
			e.net.Reset()
			if err := tt.Apply(stagingFile{t.Context(), st}); err != nil {
				t.Fatal(err)
			}
			if !st.Dirty() {
				t.Fatal("edited copy is not dirty")
			}
			if tt.Theirs != nil {
				e.rawPut("f", tt.Theirs)
			}
			_, ok, err := st.Save(t.Context(), "f", bucket.Meta{User: map[string]string{}})
			ops, sent, received := e.net.Snapshot()
			if tt.Theirs != nil {
				if !errors.Is(err, ErrReplacedWhileOpen) || !errors.Is(err, syscall.ESTALE) {
					t.Fatalf("save over another version: %v, want ErrReplacedWhileOpen (ESTALE)", err)
				}
				checkSame(t, e.content(t, "f"), tt.Theirs)
				if !st.Dirty() {
					t.Error("a failed save left the copy clean")
				}
			} else {
				if err != nil || !ok {
					t.Fatalf("save: ok %v, %v", ok, err)
				}
				if st.Dirty() {
					t.Error("saved copy still dirty")
				}
				checkSame(t, e.content(t, "f"), tt.Model(data))
			}
			if sent > tt.MaxSent || received > tt.MaxFetched {
				t.Errorf("sent %d bytes (at most %d) and fetched %d (at most %d)", sent, tt.MaxSent, received, tt.MaxFetched)
			}
			for op, n := range tt.Ops {
				if ops[op] != n {
					t.Errorf("%d %s requests, want %d (all: %v)", ops[op], op, n, ops)
				}
			}
		})
	}
}

// TestStagingSavesAgainFromItsOwnVersion: after a save, the copy's base is
// the version it stored, so a second change is again saved in part.
func TestStagingSavesAgainFromItsOwnVersion(t *testing.T) {
	e := newStagingEnv(t, 64<<20)
	ctx := t.Context()
	data, o := e.object(t, "f", 11<<20)
	st := e.copyOf(t, "f", o)
	for i, line := range []string{"one\n", "two\n", "three\n"} {
		write(t, st, []byte(line), -1)
		if _, _, err := st.Save(ctx, "f", bucket.Meta{User: map[string]string{}}); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		data = append(data, line...)
	}
	_, sent, received := e.net.Snapshot()
	checkSame(t, e.content(t, "f"), data)
	if sent > slack || received > slack {
		t.Errorf("three appends sent %d bytes and fetched %d", sent, received)
	}
}

// TestStagingWholeCopyOverridesAnotherWriter: a copy that holds every byte
// (the file was rewritten whole) is saved whole when the object changed:
// the last writer wins, as with any file rewritten.
func TestStagingWholeCopyOverridesAnotherWriter(t *testing.T) {
	e := newStagingEnv(t, 64<<20)
	_, o := e.object(t, "f", 11<<20)
	st := e.copyOf(t, "f", o)
	if err := st.Resize(0); err != nil {
		t.Fatal(err)
	}
	mine := bytes.Repeat([]byte("m"), 6<<20)
	write(t, st, mine, 0)
	e.rawPut("f", []byte("theirs"))
	save(t, st, "f")
	checkSame(t, e.content(t, "f"), mine)
}

// TestStagingWriteBackStopsTheStream: writing over a part already sent
// abandons the stream (its upload is aborted), and the save sends the
// file whole, with the change.
func TestStagingWriteBackStopsTheStream(t *testing.T) {
	e := newStagingEnv(t, 64<<20)
	st := e.empty(t)
	data := bytes.Repeat([]byte("a"), 2*testPart+10)
	write(t, st, data, 0)
	if !st.Streaming() {
		t.Fatal("no stream")
	}
	write(t, st, []byte("B"), 3)
	if st.Streaming() {
		t.Fatal("a write over a sent part left the stream going")
	}
	data[3] = 'B'
	save(t, st, "g")
	ops, _, _ := e.net.Snapshot()
	if ops["AbortMultipartUpload"] != 1 {
		t.Errorf("requests %v: the abandoned stream was not aborted", ops)
	}
	checkSame(t, e.content(t, "g"), data)
}

// TestStagingReadFetchesWhatItReads: a read through a copy fetches the
// blocks around the range, not the object; a read of bytes the copy never
// held of the version the reader has open is left to the bucket (ok false).
func TestStagingReadFetchesWhatItReads(t *testing.T) {
	e := newStagingEnv(t, 64<<20)
	ctx := t.Context()
	data, o := e.object(t, "f", 13<<20)
	st := e.copyOf(t, "f", o)
	p := make([]byte, 100)
	if _, ok, _ := st.Read(ctx, p, 9<<20, o.ETag); ok {
		t.Fatal("an untouched range of the reader's own version was not left to the bucket")
	}
	if _, _, err := st.Write(ctx, []byte("Z"), 9<<20, false, named("f")); err != nil {
		t.Fatal(err)
	}
	n, ok, err := st.Read(ctx, p, 9<<20, o.ETag)
	if err != nil || !ok || n != len(p) {
		t.Fatalf("read: %d bytes, ok %v, %v", n, ok, err)
	}
	want := append([]byte{'Z'}, data[9<<20+1:9<<20+100]...)
	checkSame(t, p, want)
	if _, _, received := e.net.Snapshot(); received > fetchBlock+slack {
		t.Errorf("a 100-byte read fetched %d bytes", received)
	}
	// Past the end: nothing, no error.
	if n, ok, err := st.Read(ctx, p, 13<<20, "other"); n != 0 || !ok || err != nil {
		t.Errorf("read at the end: %d, %v, %v", n, ok, err)
	}
}

// TestStagingSpaceIsBounded: writes past the staging limit fail with
// ENOSPC and leave the copy as it was; closing a copy returns its space.
func TestStagingSpaceIsBounded(t *testing.T) {
	e := newStagingEnv(t, 1<<20)
	ctx := t.Context()
	st, err := e.area.Empty(true)
	if err != nil {
		t.Fatal(err)
	}
	write(t, st, make([]byte, 600<<10), 0)
	_, _, err = st.Write(ctx, make([]byte, 600<<10), 600<<10, false, named("h"))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write past the limit: %v, want ENOSPC", err)
	}
	if st.Size() != 600<<10 {
		t.Errorf("size %d after a refused write", st.Size())
	}
	if used, _ := e.area.Space.Usage(); used != 600<<10 {
		t.Errorf("space used %d, want %d", used, 600<<10)
	}
	// A copy of a large object holds nothing until read: it is free.
	_, o := e.object(t, "big", 8<<20)
	big, err := e.area.Based("big", o.ETag, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	if used, _ := e.area.Space.Usage(); used != 600<<10 {
		t.Errorf("a copy not yet fetched is charged: %d used", used)
	}
	st.Close()
	big.Close()
	if used, _ := e.area.Space.Usage(); used != 0 {
		t.Errorf("space used %d after every copy closed", used)
	}
}

// TestStagingDetachStandsAlone: a detached copy holds every byte, so it
// can be saved under another name after the object is gone (a rename, an
// unlink while open).
func TestStagingDetachStandsAlone(t *testing.T) {
	e := newStagingEnv(t, 64<<20)
	ctx := t.Context()
	data, o := e.object(t, "old", 6<<20)
	st := e.copyOf(t, "old", o)
	write(t, st, []byte("!"), -1)
	if err := st.Detach(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Delete(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SaveWhole(ctx, "new", bucket.Meta{User: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	checkSame(t, e.content(t, "new"), append(data, '!'))
	if st.Dirty() {
		t.Error("copy dirty after SaveWhole")
	}
}

// Staging copies are files without a name (or, where the filesystem
// cannot make those, with one removed at once): nothing shows in the
// cache directory while they are in use, or after a crash. A cache
// directory that does not exist yet is made.
func TestStagingFilesHaveNoNames(t *testing.T) {
	for _, tt := range []struct {
		name string
		open func(dir string) (*os.File, error)
	}{
		{"unnamed", openUnnamed},
		{"named, then removed", openNamed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			f, err := tt.open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt([]byte("data"), 1<<20); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 4)
			if _, err := f.ReadAt(got, 1<<20); err != nil || string(got) != "data" {
				t.Fatalf("read back %q, %v", got, err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("the cache directory shows %d entries while a copy is open, want none", len(left))
			}
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		env := newStagingEnv(t, 1<<30)
		env.area.Dir = filepath.Join(env.area.Dir, "not", "yet")
		st, err := env.area.Empty(true)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if left, err := os.ReadDir(env.area.Dir); err != nil || len(left) != 0 {
			t.Errorf("cache directory: %d entries, %v; want it made, and empty", len(left), err)
		}
	})
}
