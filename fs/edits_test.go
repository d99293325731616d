package fs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"mount-ws/bucket"
	"mount-ws/fs"
	"mount-ws/internal/fusetest"
	"mount-ws/vfs/vfstest"
)

// osFile applies vfstest's edits through the kernel.
type osFile struct{ f *os.File }

func (f osFile) WriteAt(p []byte, off int64) error {
	_, err := f.f.WriteAt(p, off)
	return err
}

func (f osFile) Append(p []byte) error {
	st, err := f.f.Stat()
	if err != nil {
		return err
	}
	return f.WriteAt(p, st.Size())
}

func (f osFile) Truncate(size int64) error { return f.f.Truncate(size) }

// TestEditsThroughMount runs the core's cases of partial saves
// (vfstest.Edits, run on vfs.Staging by vfs/TestStagingSavesOnlyWhatChanged)
// through a mount: opened, edited, closed, the object must be the edited
// bytes, and the mount's traffic within the same bounds.
func TestEditsThroughMount(t *testing.T) {
	for _, tt := range vfstest.Edits() {
		t.Run(tt.Name, func(t *testing.T) {
			net := &vfstest.Traffic{}
			b, put := workspaceWith(t, bucket.Config{Observer: net})
			data := tt.Content()
			flags := os.O_RDWR
			if tt.Size == 0 {
				flags |= os.O_CREATE | os.O_EXCL
			} else {
				put("f", data)
			}
			mnt := fusetest.Mount(t, fs.New(b, fs.Options{PartSize: vfstest.PartSize}))
			f, err := os.OpenFile(filepath.Join(mnt, "f"), flags, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			net.Reset() // the lookup's requests are not the edit's
			if err := tt.Apply(osFile{f}); err != nil {
				f.Close()
				t.Fatal(err)
			}
			if tt.Theirs != nil {
				put("f", tt.Theirs)
			}
			closeErr := f.Close()
			ops, sent, received := net.Snapshot()
			want := tt.Theirs
			if want == nil {
				want = tt.Model(data)
				if closeErr != nil {
					t.Fatalf("close: %v", closeErr)
				}
			} else if closeErr == nil {
				t.Error("close succeeded over another program's version")
			}
			if got := readObject(t, b, "f"); !bytes.Equal(got, want) {
				t.Fatalf("object after the save: %d bytes, want %d (or same length, other bytes)", len(got), len(want))
			}
			if sent > tt.MaxSent || received > tt.MaxFetched {
				t.Errorf("sent %d bytes (at most %d) and fetched %d (at most %d); requests %v", sent, tt.MaxSent, received, tt.MaxFetched, ops)
			}
			for op, n := range tt.Ops {
				if ops[op] != n {
					t.Errorf("%d %s requests, want %d (all: %v)", ops[op], op, n, ops)
				}
			}
		})
	}
}
