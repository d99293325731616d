package datacache

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// putObject puts the blocks of v whose block i holds blockOf(i) (less of
// it in the last), skipping those in skip, and returns the object's bytes.
func putObject(t *testing.T, v Version, skip ...int64) []byte {
	t.Helper()
	var all []byte
	for i := int64(0); i*BlockSize < v.size; i++ {
		b := blockOf(byte(i), int(min(BlockSize, v.size-i*BlockSize)))
		all = append(all, b...)
		if !slices.Contains(skip, i) {
			if err := v.Put(i, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	return all
}

func readWhole(t *testing.T, v Version) ([]byte, bool) {
	t.Helper()
	f, ok := v.Whole()
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

func filesWith(t *testing.T, dir, suffix string) int {
	n := 0
	for _, name := range blockFiles(t, dir) {
		if strings.HasSuffix(name, suffix) {
			n++
		}
	}
	return n
}

// TestVersionLayout: objects of WholeMin bytes up to half the cache keep
// their blocks in one file; smaller and larger ones in block files.
func TestVersionLayout(t *testing.T) {
	for _, tc := range []struct {
		name        string
		size, limit int64
		oneFile     bool
	}{
		{"small", WholeMin - 1, 64 << 20, false},
		{"large", WholeMin, 64 << 20, true},
		{"more than half the cache", WholeMin + 1, 2 * WholeMin, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c := open(t, dir, tc.limit)
			v := c.Version("k", "e", tc.size)
			data := putObject(t, v)
			for i := int64(0); i*BlockSize < tc.size; i++ {
				if b, ok := get1(v, i); !ok || !bytes.Equal(b, data[i*BlockSize:min((i+1)*BlockSize, tc.size)]) {
					t.Fatalf("block %d: ok %v, %d bytes", i, ok, len(b))
				}
			}
			if got := filesWith(t, dir, objectSuffix) == 1; got != tc.oneFile {
				t.Errorf("one file: %v, want %v (files %v)", got, tc.oneFile, blockFiles(t, dir))
			}
			if _, ok := readWhole(t, v); ok != tc.oneFile {
				t.Errorf("whole copy: %v, want %v", ok, tc.oneFile)
			}
		})
	}
}

func get1(v Version, i int64) ([]byte, bool) {
	p := make([]byte, BlockSize)
	n, ok := v.Get(i, p)
	return p[:n], ok
}

// TestWholeCopy: a large object is whole once its last block is put, not
// before; its file holds exactly its bytes; another version is another
// object; a reopen finds it, checked.
func TestWholeCopy(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, 64<<20)
	const size = 4*BlockSize + 4321
	v := c.Version("big.bin", "e1", size)
	data := putObject(t, v, 2)
	if _, ok := readWhole(t, v); ok {
		t.Fatal("whole with a block missing")
	}
	if v.Has(2) || !v.Has(3) {
		t.Errorf("Has(2) %v, Has(3) %v; want false, true", v.Has(2), v.Has(3))
	}
	if err := v.Put(2, data[2*BlockSize:3*BlockSize]); err != nil {
		t.Fatal(err)
	}
	if got, ok := readWhole(t, v); !ok || !bytes.Equal(got, data) {
		t.Fatalf("whole copy: ok %v, right bytes %v", ok, bytes.Equal(got, data))
	}
	if used, _ := c.Used(); used != size {
		t.Errorf("used %d, want %d", used, size)
	}
	if other := c.Version("big.bin", "e2", size); other.Has(0) {
		t.Error("another version served from this one's file")
	}
	if err := v.Put(0, blockOf(0, 10)); err == nil {
		t.Error("a block of the wrong length was taken")
	}
	c = open(t, dir, 64<<20) // a remount
	v = c.Version("big.bin", "e1", size)
	if got, ok := readWhole(t, v); !ok || !bytes.Equal(got, data) {
		t.Errorf("after a reopen: whole %v, right bytes %v", ok, bytes.Equal(got, data))
	}
	if used, _ := c.Used(); used != size {
		t.Errorf("after a reopen: used %d, want %d", used, size)
	}
}

// TestObjectDamageNeverServed: bytes the index claims but the file lost
// (a crash) or changed are never served, by Get or as a whole copy; a
// record cut short ends the index; the block is fetched and put again.
func TestObjectDamageNeverServed(t *testing.T) {
	const size = WholeMin + 100
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, file, index string)
		bad    int64 // the block damaged; -1: none
	}{
		{"a byte flipped", func(t *testing.T, file, _ string) {
			f, _ := os.OpenFile(file, os.O_RDWR, 0)
			defer f.Close()
			b := make([]byte, 1)
			f.ReadAt(b, BlockSize+7)
			b[0] ^= 1
			f.WriteAt(b, BlockSize+7)
		}, 1},
		{"the file cut short", func(t *testing.T, file, _ string) { os.Truncate(file, size-50) }, 4},
		{"a hole", func(t *testing.T, file, _ string) {
			f, _ := os.OpenFile(file, os.O_RDWR, 0)
			defer f.Close()
			f.WriteAt(make([]byte, BlockSize), 2*BlockSize)
		}, 2},
		{"a record cut short", func(t *testing.T, _, index string) {
			f, _ := os.OpenFile(index, os.O_WRONLY|os.O_APPEND, 0)
			defer f.Close()
			f.Write([]byte{1, 2, 3})
		}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			v := open(t, dir, 64<<20).Version("k", "e", size)
			data := putObject(t, v)
			tc.damage(t, filepath.Join(dir, v.name), filepath.Join(dir, indexName(v.name)))
			v = open(t, dir, 64<<20).Version("k", "e", size)
			_, whole := readWhole(t, v)
			if whole != (tc.bad < 0) {
				t.Fatalf("whole copy served: %v, want %v", whole, tc.bad < 0)
			}
			for i := int64(0); i*BlockSize < size; i++ {
				b, ok := get1(v, i)
				if ok && !bytes.Equal(b, data[i*BlockSize:min((i+1)*BlockSize, size)]) {
					t.Fatalf("block %d served with wrong bytes", i)
				}
				if ok == (i == tc.bad) {
					t.Errorf("block %d served: %v", i, ok)
				}
			}
			if tc.bad >= 0 {
				if err := v.Put(tc.bad, data[tc.bad*BlockSize:min((tc.bad+1)*BlockSize, size)]); err != nil {
					t.Fatal(err)
				}
				if got, ok := readWhole(t, v); !ok || !bytes.Equal(got, data) {
					t.Errorf("after the block was put again: whole %v, right bytes %v", ok, bytes.Equal(got, data))
				}
			}
		})
	}
}

// TestObjectEvicted: a large object goes whole when least recently used,
// its files with it, and an open whole copy stays readable.
func TestObjectEvicted(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, 2*WholeMin)
	v := c.Version("k", "e", WholeMin)
	data := putObject(t, v)
	f, ok := v.Whole()
	if !ok {
		t.Fatal("no whole copy")
	}
	defer f.Close()
	putObject(t, c.Version("other", "e", WholeMin))
	c.Put("third", "e", 0, blockOf(9, BlockSize)) // over the limit: k goes
	if v.Has(0) {
		t.Error("the least recently used object was kept over the limit")
	}
	if n := filesWith(t, dir, objectSuffix) + filesWith(t, dir, indexSuffix); n != 2 {
		t.Errorf("%d object and index files left, want the other object's 2: %v", n, blockFiles(t, dir))
	}
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("an open whole copy read after its eviction: %v, right bytes %v", err, bytes.Equal(got, data))
	}
}

// TestConcurrentObjectPuts: objects filled by many readers at once while
// they evict each other stay counted, and what is whole is right.
func TestConcurrentObjectPuts(t *testing.T) {
	dir := t.TempDir()
	c := open(t, dir, 2*WholeMin)
	versions := []Version{c.Version("a", "e", WholeMin), c.Version("b", "e", WholeMin), c.Version("c", "e", WholeMin)}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := versions[w%3]
			for i := range v.size / BlockSize {
				j := (i + int64(w)) % (v.size / BlockSize)
				v.Put(j, blockOf(byte(j), BlockSize))
			}
		}()
	}
	wg.Wait()
	var held int64
	for _, v := range versions {
		for i := range v.size / BlockSize {
			if b, ok := get1(v, i); ok {
				if !bytes.Equal(b, blockOf(byte(i), BlockSize)) {
					t.Fatalf("%s block %d: wrong bytes", v.key, i)
				}
				held += BlockSize
			}
		}
	}
	if used, limit := c.Used(); used != held || used > limit {
		t.Errorf("%d bytes counted, %d readable, limit %d", used, held, limit)
	}
}

// FuzzReadIndex: any index file reads as an object whose blocks held are
// counted and lie within it, or not at all; never a panic.
func FuzzReadIndex(f *testing.F) {
	header := func(size int64) []byte {
		return binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, indexMagic), uint64(size))
	}
	good := append(header(WholeMin+5), record(0, BlockSize, 7)...)
	good = append(good, record(4, 5, 9)...)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add(header(-1))
	f.Add(append(header(WholeMin), record(9, BlockSize, 1)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, content []byte) {
		dir := t.TempDir()
		idx, file := filepath.Join(dir, "o"+indexSuffix), filepath.Join(dir, "o"+objectSuffix)
		if err := os.WriteFile(idx, content, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		o, _, err := readIndex(idx, file)
		if err != nil {
			return
		}
		held := 0
		for i, ok := range o.have {
			if ok {
				held++
				if n := o.blockLen(int64(i)); n <= 0 || n > BlockSize {
					t.Fatalf("block %d of %d bytes held", i, n)
				}
			}
		}
		if held != o.count || o.size < WholeMin || int64(len(o.have)) != (o.size+BlockSize-1)/BlockSize {
			t.Fatalf("object of %d bytes, %d blocks, %d held, counted %d", o.size, len(o.have), held, o.count)
		}
	})
}
