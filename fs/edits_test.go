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
			b, _ := workspaceWith(t, bucket.Config{Observer: net})
			data := tt.Content()
			if _, err := b.Put(t.Context(), "f", bytes.NewReader(data), tt.Size, bucket.Meta{}); err != nil {
				t.Fatal(err)
			}
			mnt := fusetest.Mount(t, fs.New(b, fs.Options{PartSize: vfstest.PartSize}))
			f, err := os.OpenFile(filepath.Join(mnt, "f"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			net.Reset() // the lookup's LIST and HEAD are not the save's
			if err := tt.Apply(osFile{f}); err != nil {
				f.Close()
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			ops, sent, received := net.Snapshot()
			body, err := b.Get(t.Context(), "f", 0, -1, "")
			if err != nil {
				t.Fatal(err)
			}
			defer body.Close()
			var got bytes.Buffer
			if _, err := got.ReadFrom(body); err != nil {
				t.Fatal(err)
			}
			if want := tt.Model(data); !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("object after the save: %d bytes, want %d (or same length, other bytes)", got.Len(), len(want))
			}
			if sent > tt.MaxSent || received > tt.MaxFetched {
				t.Errorf("sent %d bytes (at most %d) and fetched %d (at most %d); requests %v", sent, tt.MaxSent, received, tt.MaxFetched, ops)
			}
		})
	}
}
