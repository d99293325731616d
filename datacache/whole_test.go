package datacache

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// object puts the blocks of an object of size bytes whose block i holds
// blockOf(i) (less of it in the last), skipping those in skip, and
// returns its bytes.
func object(t *testing.T, c *Cache, key, etag string, size int64, skip ...int64) []byte {
	t.Helper()
	var all []byte
	for i := int64(0); i*BlockSize < size; i++ {
		b := blockOf(byte(i), int(min(BlockSize, size-i*BlockSize)))
		all = append(all, b...)
		if !slices.Contains(skip, i) {
			if err := c.Put(key, etag, i, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	return all
}

func readWhole(t *testing.T, c *Cache, key, etag string, size int64) ([]byte, bool) {
	t.Helper()
	f, ok := c.Whole(key, etag, size)
	if !ok {
		return nil, false
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b, true
}

// TestAssemble: an object whose blocks are all cached becomes one file of
// exactly its bytes, read whole or by block, with its blocks dropped; one
// block short, nothing is assembled.
func TestAssemble(t *testing.T) {
	const size = 2*BlockSize + 4321 // a short last block
	for _, tc := range []struct {
		name string
		skip []int64
		want bool
	}{
		{"every block", nil, true},
		{"the last block missing", []int64{2}, false},
		{"a middle block missing", []int64{1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := open(t, dir, 16<<20)
			data := object(t, c, "big.bin", "e1", size, tc.skip...)
			ok, err := c.Assemble("big.bin", "e1", size)
			if err != nil || ok != tc.want {
				t.Fatalf("Assemble: %v, %v; want %v", ok, err, tc.want)
			}
			got, ok := readWhole(t, c, "big.bin", "e1", size)
			if ok != tc.want || (ok && !bytes.Equal(got, data)) {
				t.Fatalf("whole copy: found %v, right bytes %v; want found %v", ok, bytes.Equal(got, data), tc.want)
			}
			if !tc.want {
				return
			}
			for i := int64(0); i < 3; i++ {
				b, ok := get(c, "big.bin", "e1", i)
				if !ok || !bytes.Equal(b, data[i*BlockSize:min((i+1)*BlockSize, size)]) {
					t.Errorf("block %d from the whole copy: ok %v, %d bytes", i, ok, len(b))
				}
			}
			if _, ok := get(c, "big.bin", "e1", 3); ok {
				t.Error("a block past the end was served")
			}
			if files := blockFiles(t, dir); len(files) != 1 || !strings.HasSuffix(files[0], wholeSuffix) {
				t.Errorf("files after assembling: %v, want the whole copy alone", files)
			}
			if used, _ := c.Used(); used != size {
				t.Errorf("used %d, want %d", used, size)
			}
			for _, miss := range []struct {
				etag string
				size int64
			}{{"e2", size}, {"e1", size + 1}} {
				if f, ok := c.Whole("big.bin", miss.etag, miss.size); ok {
					f.Close()
					t.Errorf("a whole copy served for version %s of %d bytes", miss.etag, miss.size)
				}
			}
			// A remount finds it.
			c = open(t, dir, 16<<20)
			if got, ok := readWhole(t, c, "big.bin", "e1", size); !ok || !bytes.Equal(got, data) {
				t.Error("the whole copy was lost across a reopen")
			}
		})
	}
}

// TestAssembleDropsDamagedBlock: a damaged block stops the assembly (no
// whole copy with its bytes) and is dropped, to be fetched again.
func TestAssembleDropsDamagedBlock(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, 16<<20)
	object(t, c, "k", "e", 2*BlockSize)
	path := filepath.Join(dir, c.name("k", "e", 1))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[5] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Assemble("k", "e", 2*BlockSize); ok || err != nil {
		t.Fatalf("Assemble over a damaged block: %v, %v; want false, nil", ok, err)
	}
	if f, ok := c.Whole("k", "e", 2*BlockSize); ok {
		f.Close()
		t.Fatal("a whole copy made of a damaged block")
	}
	if c.Has("k", "e", 1) {
		t.Error("the damaged block is still indexed")
	}
	for _, name := range blockFiles(t, dir) {
		if strings.HasPrefix(name, tempPrefix) {
			t.Errorf("temporary file %s left", name)
		}
	}
}

// TestWholeCopyEvicted: a whole copy counts its size against the limit
// and goes when least recently used, and an open copy stays readable.
func TestWholeCopyEvicted(t *testing.T) {
	dir := t.TempDir()
	const size = 2 * BlockSize
	c := open(t, dir, 3*BlockSize)
	data := object(t, c, "k", "e", size)
	if ok, err := c.Assemble("k", "e", size); !ok || err != nil {
		t.Fatalf("Assemble: %v, %v", ok, err)
	}
	f, ok := c.Whole("k", "e", size)
	if !ok {
		t.Fatal("no whole copy")
	}
	defer f.Close()
	c.Put("other", "e", 0, blockOf(9, BlockSize))
	c.Put("other", "e", 1, blockOf(9, BlockSize)) // over the limit: the copy goes
	if c.Has("k", "e", 0) {
		t.Error("the least recently used whole copy was kept over the limit")
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("an open whole copy read after its eviction: %v, right bytes %v", err, bytes.Equal(got, data))
	}
}
