package datacache

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func blockOf(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

func open(t *testing.T, dir string, limit int64) *Cache {
	t.Helper()
	c, err := Open(dir, "org/ws", limit)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func get(c *Cache, key, etag string, i int64) ([]byte, bool) {
	p := make([]byte, BlockSize)
	n, ok := c.Get(key, etag, i, p)
	return p[:n], ok
}

func TestPutGet(t *testing.T) {
	c := open(t, t.TempDir(), 8<<20)
	full, short := blockOf(1, BlockSize), blockOf(2, 1000)
	for _, tc := range []struct {
		key, etag string
		index     int64
		data      []byte
	}{
		{"a/b.csv", `"e1"`, 0, full},
		{"a/b.csv", `"e1"`, 1, short}, // the last block of an object
		{"", `"e1"`, 0, nil},          // an empty block is a block too
	} {
		if err := c.Put(tc.key, tc.etag, tc.index, tc.data); err != nil {
			t.Fatal(err)
		}
		if got, ok := get(c, tc.key, tc.etag, tc.index); !ok || !bytes.Equal(got, tc.data) {
			t.Errorf("%s %s #%d: ok %v, %d bytes, want the %d put", tc.key, tc.etag, tc.index, ok, len(got), len(tc.data))
		}
	}
	for _, miss := range []struct {
		key, etag string
		index     int64
	}{
		{"a/b.csv", `"e2"`, 0}, // another version: never served
		{"a/b.csv", `"e1"`, 2},
		{"a/c.csv", `"e1"`, 0},
	} {
		if _, ok := get(c, miss.key, miss.etag, miss.index); ok || c.Has(miss.key, miss.etag, miss.index) {
			t.Errorf("%v: served a block never put", miss)
		}
	}
	if p := make([]byte, 10); true {
		if _, ok := c.Get("a/b.csv", `"e1"`, 0, p); ok {
			t.Error("a block served into a buffer too small for it")
		}
	}
}

// TestScopesApart: two workspaces sharing a directory (same key, same
// ETag) never see each other's blocks.
func TestScopesApart(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir, "org/a", 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, "org/b", 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	a.Put("k", "e", 0, []byte("a's"))
	if _, ok := get(b, "k", "e", 0); ok {
		t.Error("another scope's block was served")
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	per := int64(BlockSize + trailerSize)
	c := open(t, dir, 3*per)
	for i := range int64(3) {
		c.Put("k", "e", i, blockOf(byte(i), BlockSize))
	}
	get(c, "k", "e", 0) // 0 used again: 1 is now the oldest
	c.Put("k", "e", 3, blockOf(3, BlockSize))
	for i, want := range []bool{true, false, true, true} {
		if _, ok := get(c, "k", "e", int64(i)); ok != want {
			t.Errorf("block %d cached: %v, want %v", i, ok, want)
		}
	}
	if used, _ := c.Used(); used != 3*per {
		t.Errorf("used %d, want %d", used, 3*per)
	}
	if files := blockFiles(t, dir); len(files) != 3 {
		t.Errorf("%d block files on disk, want 3: %v", len(files), files)
	}
}

func blockFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestSurvivesReopen: a remount finds the blocks, in their order of use,
// and drops the temporary file of a write a crash cut short.
func TestSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	per := int64(BlockSize + trailerSize)
	c := open(t, dir, 2*per)
	c.Put("k", "e", 0, blockOf(0, BlockSize))
	c.Put("k", "e", 1, blockOf(1, BlockSize))
	if err := os.WriteFile(filepath.Join(dir, tempPrefix+"123"), blockOf(9, 500), 0o600); err != nil {
		t.Fatal(err)
	}
	c = open(t, dir, 2*per)
	if used, _ := c.Used(); used != 2*per {
		t.Errorf("after reopening: %d bytes, want %d", used, 2*per)
	}
	if got, ok := get(c, "k", "e", 1); !ok || !bytes.Equal(got, blockOf(1, BlockSize)) {
		t.Error("block 1 lost across a reopen")
	}
	for _, name := range blockFiles(t, dir) {
		if strings.HasPrefix(name, tempPrefix) {
			t.Errorf("temporary file %s left after reopening", name)
		}
	}
}

// TestDamagedBlockNeverServed: a block file cut short (a crash after the
// rename, before the data reached the disk) or changed is dropped.
func TestDamagedBlockNeverServed(t *testing.T) {
	for name, damage := range map[string]func([]byte) []byte{
		"cut short":   func(b []byte) []byte { return b[:len(b)/2] },
		"no trailer":  func(b []byte) []byte { return b[:len(b)-trailerSize] },
		"a byte flip": func(b []byte) []byte { b[10] ^= 1; return b },
		"zeroes":      func(b []byte) []byte { return make([]byte, len(b)) },
		"empty":       func([]byte) []byte { return nil },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			c := open(t, dir, 8<<20)
			c.Put("k", "e", 0, blockOf(7, 4096))
			path := filepath.Join(dir, c.name("k", "e", 0))
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, damage(b), 0o600); err != nil {
				t.Fatal(err)
			}
			if got, ok := get(c, "k", "e", 0); ok {
				t.Fatalf("a damaged block was served (%d bytes)", len(got))
			}
			if c.Has("k", "e", 0) {
				t.Error("a damaged block is still indexed")
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("a damaged block file was left: %v", err)
			}
		})
	}
}

// TestPrivate: the cache's directory and files are its owner's alone,
// and a directory others can write is refused.
func TestPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	c := open(t, dir, 8<<20)
	c.Put("secret/key.csv", "e", 0, []byte("data"))
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode %v (%v), want 0700", fi.Mode(), err)
	}
	for _, name := range blockFiles(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s mode %v (%v), want no access for others", name, fi.Mode(), err)
		}
		if strings.Contains(name, "secret") || strings.Contains(name, "key") {
			t.Errorf("block file name %q shows the key", name)
		}
	}
	open := t.TempDir()
	if err := os.Chmod(open, 0o1777); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(open, "s", 8<<20); err == nil || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("a directory others can write: %v, want a refusal that says what to do", err)
	}
	if _, err := Open(t.TempDir(), "s", 100); err == nil {
		t.Error("a limit smaller than one block was accepted")
	}
}

// FuzzReadBlock: whatever a block file holds, it is served only if it is
// exactly what Put wrote.
func FuzzReadBlock(f *testing.F) {
	good := append(blockOf(3, 100), func() []byte { t := trailer(blockOf(3, 100)); return t[:] }()...)
	f.Add(good)
	f.Add(good[:50])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, content []byte) {
		path := filepath.Join(t.TempDir(), "b"+blockSuffix)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, BlockSize)
		n, err := readBlock(path, p)
		if err != nil {
			return
		}
		want := append(append([]byte(nil), p[:n]...), func() []byte { t := trailer(p[:n]); return t[:] }()...)
		if !bytes.Equal(content, want) {
			t.Fatalf("served %d bytes from a file Put did not write", n)
		}
	})
}

// TestConcurrentPutsStayCounted: many Puts of the same blocks at once,
// past the limit, leave on disk exactly the blocks the cache counts.
func TestConcurrentPutsStayCounted(t *testing.T) {
	dir := t.TempDir()
	per := int64(BlockSize + trailerSize)
	c := open(t, dir, 2*per)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range int64(4) {
				c.Put("k", "e", (i+int64(w))%4, blockOf(byte(i), BlockSize))
			}
		}()
	}
	wg.Wait()
	var onDisk int64
	for _, name := range blockFiles(t, dir) {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		onDisk += fi.Size()
	}
	if used, _ := c.Used(); onDisk != used {
		t.Errorf("%d bytes of blocks on disk, %d counted", onDisk, used)
	}
}
