// Package datacache keeps blocks of objects on local disk, so that data
// read once is read again without the storage: a dataset re-read every
// epoch, a file opened by many processes.
//
// A block is identified by the object's key, its ETag and the block's
// index, so a changed object (another ETag) is never served from the
// cache. Each block is one file named by a hash of those (and of a scope,
// the workspace), so file names reveal no key. A block is written to a
// temporary file and renamed into place, and carries a checksum of its
// bytes that every read checks: a block cut short by a crash, or damaged
// on disk, is dropped and fetched again, never served. The cache holds at
// most its limit of bytes, dropping the least recently used blocks
// first; it is rebuilt from the directory at Open, oldest use by
// modification time, so it survives a remount.
//
// A large object's blocks go into one file instead, at their place in
// the object (object.go), so that once they are all there the file is a
// whole copy that the kernel can read without the filesystem (FUSE
// passthrough). Version picks the layout for an object.
package datacache

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// BlockSize is the size of a cached block (the last block of an object is
// shorter).
const BlockSize = 1 << 20

// A block file is the block's bytes followed by a trailer: its length and
// a CRC-32C of the bytes, then a magic number.
const (
	trailerSize = 16
	magic       = 0x6d77736231 // "mwsb1"
	blockSuffix = ".blk"
	tempPrefix  = "tmp-"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Cache is a directory of blocks. It is safe for concurrent use.
type Cache struct {
	dir   string
	scope string
	limit int64

	mu     sync.Mutex
	blocks map[string]*list.Element // entries by file name; guarded by mu
	lru    list.List                // of *entry, least recently used first; guarded by mu
	used   int64                    // bytes of the files; guarded by mu
}

// entry is a block file, or the file of a large object (obj set).
type entry struct {
	name    string
	size    int64     // bytes of data it holds
	touched time.Time // when its file's time was last set; guarded by Cache.mu
	obj     *object   // guarded by Cache.mu
}

// touchEvery is how often at most a block's file time is set as it is
// read: the order of use only matters to the next Open, and setting it at
// every read would cost a write of the file's inode per read.
const touchEvery = time.Minute

// Open opens (or creates, mode 0700) the cache in dir, which no other
// user may write, for blocks of the
// objects of scope, holding at most limit bytes. Blocks already in dir
// are kept (those of other scopes count against the limit too);
// temporary files of an earlier run are removed.
func Open(dir, scope string, limit int64) (*Cache, error) {
	if limit < BlockSize+trailerSize {
		return nil, fmt.Errorf("data cache: a size of %d bytes cannot hold one block of %d", limit, BlockSize)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data cache: %w", err)
	}
	// Blocks are files only their owner can read (0600). Another user
	// who can write the directory could put blocks in it to be served
	// here: refuse that.
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("data cache: %w", err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("data cache: %s must be a directory other users cannot write (chmod 700 it, or name a new one)", dir)
	}
	c := &Cache{dir: dir, scope: scope, limit: limit, blocks: make(map[string]*list.Element)}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

// load indexes the blocks in the directory, least recently used first.
func (c *Cache) load() error {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("data cache: %w", err)
	}
	type found struct {
		entry
		at time.Time
	}
	var all []found
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, tempPrefix):
			os.Remove(filepath.Join(c.dir, name)) // a write a crash cut short
		case strings.HasSuffix(name, blockSuffix) && e.Type().IsRegular():
			fi, err := e.Info()
			if err != nil {
				continue
			}
			all = append(all, found{entry{name: name, size: fi.Size(), touched: fi.ModTime()}, fi.ModTime()})
		case strings.HasSuffix(name, indexSuffix) && e.Type().IsRegular():
			if en, at, ok := c.loadObject(name); ok {
				all = append(all, found{en, at})
			}
		case strings.HasSuffix(name, objectSuffix):
			// Indexed with its index file; alone, a crash left it.
			if _, err := os.Stat(filepath.Join(c.dir, strings.TrimSuffix(name, objectSuffix)+indexSuffix)); err != nil {
				os.Remove(filepath.Join(c.dir, name))
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range all {
		b := f.entry
		c.blocks[b.name] = c.lru.PushBack(&b)
		c.used += b.size
	}
	c.evictLocked()
	return nil
}

// name is the file name of a block: a hash, so that no key shows.
func (c *Cache) name(key, etag string, index int64) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d", c.scope, key, etag, index)
	return hex.EncodeToString(h.Sum(nil)) + blockSuffix
}

// Has reports whether the cache has block index of the object key at
// version etag as a block file (Get may still find it damaged).
func (c *Cache) Has(key, etag string, index int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.blocks[c.name(key, etag, index)]
	return ok
}

// Get reads block index of the object key at version etag into p, which
// must hold BlockSize bytes, and returns its length. ok is false when
// the cache does not have it whole.
func (c *Cache) Get(key, etag string, index int64, p []byte) (n int, ok bool) {
	name := c.name(key, etag, index)
	if !c.use(name) {
		return 0, false
	}
	n, err := readBlock(filepath.Join(c.dir, name), p)
	if err != nil {
		c.remove(name) // damaged or gone: fetch it again
		return 0, false
	}
	return n, true
}

// use reports whether the cache has the file name, and marks it as the
// most recently used; its file's time is set for the next Open (at most
// every touchEvery).
func (c *Cache) use(name string) bool {
	now := time.Now()
	touch := false
	c.mu.Lock()
	el, found := c.blocks[name]
	if found {
		c.lru.MoveToBack(el)
		if e := el.Value.(*entry); now.Sub(e.touched) >= touchEvery {
			e.touched, touch = now, true
		}
	}
	c.mu.Unlock()
	if touch {
		os.Chtimes(filepath.Join(c.dir, name), now, now)
	}
	return found
}

// readBlock reads a block file into p and checks its trailer.
func readBlock(path string, p []byte) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	n := fi.Size() - trailerSize
	if n < 0 || n > int64(len(p)) {
		return 0, errors.New("block file of a wrong size")
	}
	var t [trailerSize]byte
	if _, err := io.ReadFull(f, p[:n]); err != nil {
		return 0, err
	}
	if _, err := io.ReadFull(f, t[:]); err != nil {
		return 0, err
	}
	if !validTrailer(t, p[:n]) {
		return 0, errors.New("block file damaged")
	}
	return int(n), nil
}

func trailer(data []byte) [trailerSize]byte {
	var t [trailerSize]byte
	binary.LittleEndian.PutUint32(t[0:], uint32(len(data)))
	binary.LittleEndian.PutUint32(t[4:], crc32.Checksum(data, castagnoli))
	binary.LittleEndian.PutUint64(t[8:], magic)
	return t
}

func validTrailer(t [trailerSize]byte, data []byte) bool {
	return t == trailer(data)
}

// Put stores block index of the object key at version etag. Failures
// only mean the block is fetched again next time: they are returned for
// the caller to log.
func (c *Cache) Put(key, etag string, index int64, data []byte) error {
	if len(data) > BlockSize {
		return fmt.Errorf("data cache: a block of %d bytes", len(data))
	}
	name := c.name(key, etag, index)
	c.mu.Lock()
	_, have := c.blocks[name]
	c.mu.Unlock()
	if have {
		return nil
	}
	f, err := os.CreateTemp(c.dir, tempPrefix)
	if err != nil {
		return fmt.Errorf("data cache: %w", err)
	}
	t := trailer(data)
	_, err = f.Write(data)
	if err == nil {
		_, err = f.Write(t[:])
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("data cache: %w", err)
	}
	// Renamed and indexed under the lock: a concurrent Put of the same
	// block, or an eviction, between the two would leave a file on disk
	// that the index does not count against the limit.
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, have := c.blocks[name]; have {
		os.Remove(f.Name())
		return nil
	}
	if err := os.Rename(f.Name(), filepath.Join(c.dir, name)); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("data cache: %w", err)
	}
	b := &entry{name: name, size: int64(len(data)) + trailerSize, touched: time.Now()}
	c.blocks[name] = c.lru.PushBack(b)
	c.used += b.size
	c.evictLocked()
	return nil
}

// evictLocked removes the least recently used blocks until the cache
// fits its limit. c.mu must be held.
func (c *Cache) evictLocked() {
	for c.used > c.limit {
		el := c.lru.Front()
		c.dropLocked(el)
	}
}

// dropLocked removes the entry el and its files. c.mu must be held.
func (c *Cache) dropLocked(el *list.Element) {
	e := el.Value.(*entry)
	c.lru.Remove(el)
	delete(c.blocks, e.name)
	c.used -= e.size
	os.Remove(filepath.Join(c.dir, e.name))
	if e.obj != nil {
		os.Remove(filepath.Join(c.dir, indexName(e.name)))
	}
}

func (c *Cache) remove(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(name)
}

func (c *Cache) removeLocked(name string) {
	if el, ok := c.blocks[name]; ok {
		c.dropLocked(el)
	}
}

// Used returns the bytes the cache holds and its limit.
func (c *Cache) Used() (used, limit int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used, c.limit
}
