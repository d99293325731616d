package datacache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Large objects. An object of at least WholeMin bytes (and at most half
// the cache, so that filling it does not evict it) keeps its blocks in one
// file, each at its place in the object, with an index file beside it that
// records, block by block, the CRC-32C of what was written. Once every
// block is there, the file is a whole copy of the object (Whole).
//
// A block is recorded in the index after its bytes were written, and
// checked against its CRC at every read through the cache, so a crash
// that lost bytes the index claims costs a fetch, never wrong data. The
// kernel reads a whole copy with no check of its own: a copy this process
// wrote is whole as written (the page cache holds what the disk may not
// yet), and one found at Open is checked, all of it, the first time it
// is asked for.

// WholeMin is the smallest object kept in one file.
const WholeMin = 4 * BlockSize

const (
	objectSuffix = ".obj"
	indexSuffix  = ".idx"
	// An index file is a header (magic, object size) and then records of
	// (block index, length, CRC), each closed by a CRC of its own, so
	// that a record cut short by a crash ends the index there.
	recordSize  = 16
	indexMagic  = 0x6d77736f31 // "mwso1"
	headerBytes = 16
)

// object is what the cache holds of a large object.
type object struct {
	size      int64
	crcs      []uint32 // by block
	have      []bool   // by block
	count     int      // blocks held
	unchecked []bool   // held blocks read from disk at Open, not checked since
}

func (o *object) blocks() int64 { return int64(len(o.have)) }

func (o *object) blockLen(i int64) int64 { return min(BlockSize, o.size-i*BlockSize) }

// Version is the cache of one version of an object: key at etag, of size
// bytes. Its blocks are files of their own, or parts of one file for a
// large object.
type Version struct {
	c         *Cache
	key, etag string
	size      int64
	name      string // of the object's file; "" for block files
}

// Version returns the cache of the object key at version etag, of size
// bytes.
func (c *Cache) Version(key, etag string, size int64) Version {
	v := Version{c: c, key: key, etag: etag, size: size}
	if size >= WholeMin && size <= c.limit/2 {
		h := sha256.New()
		fmt.Fprintf(h, "%s\x00%s\x00%s\x00object", c.scope, key, etag)
		v.name = hex.EncodeToString(h.Sum(nil)) + objectSuffix
	}
	return v
}

func indexName(objectName string) string {
	return strings.TrimSuffix(objectName, objectSuffix) + indexSuffix
}

// Has reports whether the cache holds block index (Get may still find it
// damaged).
func (v Version) Has(index int64) bool {
	if v.name == "" {
		return v.c.Has(v.key, v.etag, index)
	}
	c := v.c
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.objectLocked(v.name)
	return o != nil && index < o.blocks() && o.have[index]
}

// objectLocked returns the object of the file name, if the cache has it.
// c.mu must be held.
func (c *Cache) objectLocked(name string) *object {
	if el, ok := c.blocks[name]; ok {
		return el.Value.(*entry).obj
	}
	return nil
}

// Get reads block index into p, which must hold BlockSize bytes, and
// returns its length; ok is false when the cache does not have it whole.
func (v Version) Get(index int64, p []byte) (n int, ok bool) {
	if v.name == "" {
		return v.c.Get(v.key, v.etag, index, p)
	}
	c := v.c
	if !c.use(v.name) {
		return 0, false
	}
	c.mu.Lock()
	o := c.objectLocked(v.name)
	if o == nil || index >= o.blocks() || !o.have[index] {
		c.mu.Unlock()
		return 0, false
	}
	want, crc := o.blockLen(index), o.crcs[index]
	c.mu.Unlock()
	f, err := os.Open(filepath.Join(c.dir, v.name))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	got, _ := f.ReadAt(p[:want], index*BlockSize) // a short read fails the check
	if int64(got) != want || crc32.Checksum(p[:want], castagnoli) != crc {
		c.forget(v.name, o, index) // lost in a crash, or damaged: fetch it again
		return 0, false
	}
	return got, true
}

// forget drops block index of the object o, in the file name, from the
// index in memory (its record stays on disk and fails its check again).
func (c *Cache) forget(name string, o *object, index int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.blocks[name]
	if !ok || el.Value.(*entry).obj != o || !o.have[index] {
		return
	}
	o.have[index], o.unchecked[index] = false, false
	o.count--
	n := o.blockLen(index)
	el.Value.(*entry).size -= n
	c.used -= n
}

// Put stores block index; see Cache.Put.
func (v Version) Put(index int64, data []byte) error {
	if v.name == "" {
		return v.c.Put(v.key, v.etag, index, data)
	}
	c := v.c
	c.mu.Lock()
	el, ok := c.blocks[v.name]
	if !ok {
		// Made before the file is written: an eviction meanwhile drops
		// this entry, and the block is then not recorded in a new one.
		// Its files are made now: the index's header before any Put
		// appends to it, and Puts write only into files that exist, so
		// that one racing an eviction leaves nothing behind.
		if err := c.createObject(v.name, v.size); err != nil {
			c.mu.Unlock()
			return fmt.Errorf("data cache: %w", err)
		}
		n := (v.size + BlockSize - 1) / BlockSize
		o := &object{size: v.size, crcs: make([]uint32, n), have: make([]bool, n), unchecked: make([]bool, n)}
		el = c.lru.PushBack(&entry{name: v.name, touched: time.Now(), obj: o})
		c.blocks[v.name] = el
	}
	e := el.Value.(*entry)
	o := e.obj
	if index >= o.blocks() || int64(len(data)) != o.blockLen(index) {
		c.mu.Unlock()
		return fmt.Errorf("data cache: block %d of %d bytes for an object of %d", index, len(data), v.size)
	}
	held := o.have[index]
	c.mu.Unlock()
	if held {
		return nil
	}
	crc := crc32.Checksum(data, castagnoli)
	if err := c.writeBlock(v.name, index, data, crc); errors.Is(err, os.ErrNotExist) {
		return nil // evicted meanwhile
	} else if err != nil {
		return fmt.Errorf("data cache: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now, ok := c.blocks[v.name]; !ok || now != el || o.have[index] {
		return nil
	}
	o.have[index], o.crcs[index] = true, crc
	o.count++
	e.size += int64(len(data))
	c.used += int64(len(data))
	c.lru.MoveToBack(el) // being filled: the most recently used
	c.evictLocked()
	return nil
}

// createObject makes the files of the object name, of size bytes, empty:
// its data, and its index with the header alone.
func (c *Cache) createObject(name string, size int64) error {
	if err := os.WriteFile(filepath.Join(c.dir, name), nil, 0o600); err != nil {
		return err
	}
	h := binary.LittleEndian.AppendUint64(nil, indexMagic)
	return os.WriteFile(filepath.Join(c.dir, indexName(name)), binary.LittleEndian.AppendUint64(h, uint64(size)), 0o600)
}

// writeBlock writes a block into the object's file and records it in its
// index.
func (c *Cache) writeBlock(name string, index int64, data []byte, crc uint32) error {
	f, err := os.OpenFile(filepath.Join(c.dir, name), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, index*BlockSize)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	ix, err := os.OpenFile(filepath.Join(c.dir, indexName(name)), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer ix.Close()
	_, err = ix.Write(record(uint32(index), uint32(len(data)), crc))
	return err
}

func record(index, length, crc uint32) []byte {
	b := make([]byte, 0, recordSize)
	b = binary.LittleEndian.AppendUint32(b, index)
	b = binary.LittleEndian.AppendUint32(b, length)
	b = binary.LittleEndian.AppendUint32(b, crc)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// loadObject reads the index file idx at Open: the object's entry, and
// its time of last use. An index that cannot be read is removed with its
// object's file.
func (c *Cache) loadObject(idx string) (entry, time.Time, bool) {
	name := strings.TrimSuffix(idx, indexSuffix) + objectSuffix
	o, at, err := readIndex(filepath.Join(c.dir, idx), filepath.Join(c.dir, name))
	if err != nil || o.count == 0 {
		os.Remove(filepath.Join(c.dir, idx))
		os.Remove(filepath.Join(c.dir, name))
		return entry{}, time.Time{}, false
	}
	var held int64
	for i, ok := range o.have {
		if ok {
			held += o.blockLen(int64(i))
		}
	}
	return entry{name: name, size: held, touched: at, obj: o}, at, true
}

var errBadIndex = errors.New("not an index of the data cache")

func readIndex(idx, file string) (*object, time.Time, error) {
	b, err := os.ReadFile(idx)
	if err != nil {
		return nil, time.Time{}, err
	}
	fi, err := os.Stat(file) // its time is the object's last use
	if err != nil {
		return nil, time.Time{}, err
	}
	if len(b) < headerBytes || binary.LittleEndian.Uint64(b) != indexMagic {
		return nil, time.Time{}, errBadIndex
	}
	size := int64(binary.LittleEndian.Uint64(b[8:]))
	if size < WholeMin || size > 1<<50 {
		return nil, time.Time{}, errBadIndex
	}
	n := (size + BlockSize - 1) / BlockSize
	o := &object{size: size, crcs: make([]uint32, n), have: make([]bool, n), unchecked: make([]bool, n)}
	for r := b[headerBytes:]; len(r) >= recordSize; r = r[recordSize:] {
		if binary.LittleEndian.Uint32(r[12:]) != crc32.Checksum(r[:12], castagnoli) {
			break // cut short by a crash: what follows is not to be trusted
		}
		i := int64(binary.LittleEndian.Uint32(r))
		if i >= n || int64(binary.LittleEndian.Uint32(r[4:])) != o.blockLen(i) {
			break
		}
		if !o.have[i] {
			o.count++
		}
		o.have[i], o.unchecked[i], o.crcs[i] = true, true, binary.LittleEndian.Uint32(r[8:])
	}
	return o, fi.ModTime(), nil
}

// Whole opens the object's file for reading when it holds every block,
// for the kernel to read as the object; the caller closes it. Blocks
// found at Open are checked first, once: one that fails is dropped, and
// the object is not whole. An open file stays readable when the cache
// drops it.
func (v Version) Whole() (*os.File, bool) {
	if v.name == "" {
		return nil, false
	}
	c := v.c
	c.mu.Lock()
	o := c.objectLocked(v.name)
	if o == nil || int64(o.count) != o.blocks() {
		c.mu.Unlock()
		return nil, false
	}
	var check []int64
	for i, u := range o.unchecked {
		if u {
			check = append(check, int64(i))
		}
	}
	c.mu.Unlock()
	if !c.use(v.name) {
		return nil, false
	}
	f, err := os.Open(filepath.Join(c.dir, v.name))
	if err != nil {
		return nil, false
	}
	if len(check) > 0 && !c.check(f, v.name, o, check) {
		f.Close()
		return nil, false
	}
	return f, true
}

// check reads the blocks of o in f against their CRCs, and marks them
// checked; a block that fails is dropped.
func (c *Cache) check(f *os.File, name string, o *object, blocks []int64) bool {
	buf := make([]byte, BlockSize)
	ok := true
	for _, i := range blocks {
		c.mu.Lock()
		want, crc := o.blockLen(i), o.crcs[i]
		c.mu.Unlock()
		n, err := f.ReadAt(buf[:want], i*BlockSize)
		if (err != nil && err != io.EOF) || int64(n) != want || crc32.Checksum(buf[:want], castagnoli) != crc {
			c.forget(name, o, i)
			ok = false
			continue
		}
		c.mu.Lock()
		o.unchecked[i] = false
		c.mu.Unlock()
	}
	return ok
}
