// Package detdata generates deterministic pseudo-random content of any size
// that can be read from any offset, so tests, the demo and benchmarks can
// create large objects quickly and check every byte read back without
// keeping a copy.
package detdata

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
)

// blockSize is the unit generated at a time; each block has its own seed, so
// a read at any offset costs at most one block of generation.
const blockSize = 64 << 10

// Reader is an io.ReadSeeker and io.ReaderAt over Size bytes determined by
// Seed. Reads through ReadAt are safe for concurrent use; Read and Seek
// share an offset and are not.
type Reader struct {
	seed uint64
	size int64
	off  int64
}

var (
	_ io.ReadSeeker = (*Reader)(nil)
	_ io.ReaderAt   = (*Reader)(nil)
)

// New returns a reader of size bytes of content determined by seed.
func New(seed uint64, size int64) *Reader {
	return &Reader{seed: seed, size: size}
}

// Size is the length of the content.
func (r *Reader) Size() int64 { return r.size }

// ReadAt implements io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("detdata: negative offset")
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := len(p)
	if rem := r.size - off; int64(want) > rem {
		p = p[:rem]
	}
	var block [blockSize]byte
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		b := pos / blockSize
		fill(&block, r.seed, uint64(b))
		n += copy(p[n:], block[pos%blockSize:])
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// Seek implements io.Seeker.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, fmt.Errorf("detdata: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, errors.New("detdata: seek before start")
	}
	r.off = offset
	return offset, nil
}

// fill writes block number b of the stream for seed.
func fill(block *[blockSize]byte, seed, b uint64) {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[0:], seed)
	binary.LittleEndian.PutUint64(key[8:], b)
	rng := rand.NewChaCha8(key)
	for i := 0; i < blockSize; i += 8 {
		binary.LittleEndian.PutUint64(block[i:], rng.Uint64())
	}
}

// Verify reads all of rd and reports the first offset where it differs from
// the content of (seed, size), or a length mismatch.
func Verify(rd io.Reader, seed uint64, size int64) error {
	want := New(seed, size)
	got := make([]byte, 1<<20)
	exp := make([]byte, 1<<20)
	var off int64
	for {
		n, err := io.ReadFull(rd, got)
		if n > 0 {
			m, _ := want.ReadAt(exp[:n], off)
			if m < n {
				return fmt.Errorf("content longer than %d bytes", size)
			}
			for i := range n {
				if got[i] != exp[i] {
					return fmt.Errorf("byte %d differs: got %#x, want %#x", off+int64(i), got[i], exp[i])
				}
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read at %d: %w", off, err)
		}
	}
	if off != size {
		return fmt.Errorf("content is %d bytes, want %d", off, size)
	}
	return nil
}
