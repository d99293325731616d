package fs_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"mount-ws/datacache"
	"mount-ws/fs"
	"mount-ws/internal/detdata"
	"mount-ws/internal/fusetest"
	"mount-ws/internal/wsstack"
)

// TestDataCache: with a data cache, what one mount read is read again by
// the next (a remount, another process) without a GET, whole or in
// part; an object replaced since is read anew, never from the old blocks.
// A small object's blocks are files of their own, a large one's one file.
func TestDataCache(t *testing.T) {
	for _, size := range []int64{
		3*datacache.BlockSize + 12345,  // block files; the last block is short
		datacache.WholeMin + 12345,     // one file
		24*datacache.BlockSize + 12345, // read ahead in chunks of several blocks
	} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { testDataCache(t, size) })
	}
}

func testDataCache(t *testing.T, size int64) {
	b, put := workspace(t)
	blocks := uint64((size + datacache.BlockSize - 1) / datacache.BlockSize)
	v1, _ := io.ReadAll(detdata.New(41, size))
	v2, _ := io.ReadAll(detdata.New(42, size))
	put("data.bin", v1)
	dir := filepath.Join(t.TempDir(), "data-cache")
	mount := func() (string, *fs.FS) {
		c, err := datacache.Open(dir, "fs/testdatacache", 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		f := fs.New(b, fs.Options{DataCache: c})
		return fusetest.Mount(t, f), f
	}
	read := func(mnt string, off, n int64) []byte {
		t.Helper()
		fh, err := os.Open(filepath.Join(mnt, "data.bin"))
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		p := make([]byte, n)
		if _, err := fh.ReadAt(p, off); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		return p
	}
	gets := func() uint64 { return stack.S3.Counts()[wsstack.OpGet] }

	mnt, f := mount()
	stack.S3.ResetCounts()
	if got := read(mnt, 0, size); !bytes.Equal(got, v1) {
		t.Fatal("first read: wrong bytes")
	}
	if s := f.Stats(); gets() == 0 || s.DataCacheMisses != blocks || s.DataCacheBytes < size {
		t.Fatalf("first read: %d GETs, %d blocks fetched, %d bytes kept; want GETs, %d blocks and the file kept", gets(), s.DataCacheMisses, s.DataCacheBytes, blocks)
	}

	mnt, f = mount() // a remount, with the cache reopened
	stack.S3.ResetCounts()
	for _, r := range []struct{ off, n int64 }{
		{0, size},                               // whole
		{datacache.BlockSize - 10, 20},          // across a block boundary
		{size - 500, 500},                       // in the short last block
		{datacache.BlockSize + 4096, 128 << 10}, // a random read's block
	} {
		if got := read(mnt, r.off, r.n); !bytes.Equal(got, v1[r.off:r.off+r.n]) {
			t.Errorf("re-read of [%d, %d): wrong bytes", r.off, r.off+r.n)
		}
	}
	if n := gets(); n != 0 {
		t.Errorf("re-reads through the data cache sent %d GETs, want none", n)
	}
	if s := f.Stats(); s.DataCacheHits == 0 || s.DataCacheMisses != 0 {
		t.Errorf("re-reads: %d blocks from the cache, %d fetched; want hits only", s.DataCacheHits, s.DataCacheMisses)
	}

	put("data.bin", v2) // another program replaces it
	mnt, _ = mount()
	if got := read(mnt, 0, size); !bytes.Equal(got, v2) {
		t.Error("a replaced object was served from the old version's blocks")
	}
}
