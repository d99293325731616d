package datacache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// A whole copy holds exactly the object's bytes, with no trailer, so that
// the kernel can read it as the file itself. Its integrity comes from how
// it is made (Assemble): from blocks each checked, flushed to disk before
// it is renamed into place.
const wholeSuffix = ".obj"

// wholeName is the file name of an object's whole copy (a block's name
// ends in a number, so the two never meet).
func (c *Cache) wholeName(key, etag string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00whole", c.scope, key, etag)
	return hex.EncodeToString(h.Sum(nil)) + wholeSuffix
}

// getWhole reads block index from the object's whole copy, if the cache
// has one; a block past its end is not there.
func (c *Cache) getWhole(key, etag string, index int64, p []byte) (int, bool) {
	name := c.wholeName(key, etag)
	if !c.use(name) {
		return 0, false
	}
	f, err := os.Open(filepath.Join(c.dir, name))
	if err != nil {
		c.remove(name)
		return 0, false
	}
	defer f.Close()
	n, err := f.ReadAt(p[:BlockSize], index*BlockSize)
	if err != nil && err != io.EOF {
		c.remove(name)
		return 0, false
	}
	return n, n > 0
}

// Whole opens the whole copy of the object key at version etag for
// reading, if the cache has one of size bytes; the caller closes it. An
// open copy stays readable when the cache drops it.
func (c *Cache) Whole(key, etag string, size int64) (*os.File, bool) {
	name := c.wholeName(key, etag)
	if !c.use(name) {
		return nil, false
	}
	f, err := os.Open(filepath.Join(c.dir, name))
	if err != nil {
		c.remove(name)
		return nil, false
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != size {
		f.Close() // not the version the caller has in mind
		return nil, false
	}
	return f, true
}

// errIncomplete stops an assembly whose block went missing or was damaged.
var errIncomplete = errors.New("a block is missing")

// Assemble joins the blocks of the object key at version etag, of size
// bytes, into a whole copy, and reports whether the cache has one now. It
// does nothing unless every block is in the cache. Each block is checked
// as it is read and dropped once copied, so the cache never holds the
// object twice; a damaged block is dropped and the copy abandoned. The
// copy is flushed to disk before it is renamed into place, so a crash
// leaves a whole copy or none, never one with holes. The error is for
// the caller to log: the object is then read as blocks, or from S3.
func (c *Cache) Assemble(key, etag string, size int64) (bool, error) {
	if size <= 0 {
		return false, nil
	}
	whole := c.wholeName(key, etag)
	names := make([]string, (size+BlockSize-1)/BlockSize)
	c.mu.Lock()
	_, done := c.blocks[whole]
	complete := true
	for i := range names {
		names[i] = c.name(key, etag, int64(i))
		if _, ok := c.blocks[names[i]]; !ok {
			complete = false
			break
		}
	}
	c.mu.Unlock()
	if done || !complete {
		return done, nil
	}
	f, err := os.CreateTemp(c.dir, tempPrefix)
	if err != nil {
		return false, fmt.Errorf("data cache: %w", err)
	}
	err = c.join(f, names, size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		if errors.Is(err, errIncomplete) {
			return false, nil
		}
		return false, fmt.Errorf("data cache: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, done := c.blocks[whole]; done {
		os.Remove(f.Name())
		return true, nil
	}
	if err := os.Rename(f.Name(), filepath.Join(c.dir, whole)); err != nil {
		os.Remove(f.Name())
		return false, fmt.Errorf("data cache: %w", err)
	}
	c.blocks[whole] = c.lru.PushBack(&entry{name: whole, size: size, touched: time.Now()})
	c.used += size
	for _, name := range names {
		c.removeLocked(name) // fetched again by a reader meanwhile
	}
	c.evictLocked()
	return true, nil
}

// join copies the blocks names, the object's of size bytes, into f,
// dropping each once copied, and flushes f to disk.
func (c *Cache) join(f *os.File, names []string, size int64) error {
	buf := make([]byte, BlockSize)
	for i, name := range names {
		want := min(BlockSize, size-int64(i)*BlockSize)
		n, err := readBlock(filepath.Join(c.dir, name), buf)
		if err != nil || int64(n) != want {
			c.remove(name) // damaged, or evicted meanwhile
			return errIncomplete
		}
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		c.remove(name)
	}
	return f.Sync()
}
