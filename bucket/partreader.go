package bucket

import (
	"errors"
	"io"
)

// partBuffer is how much of a part's source a partReader reads at a time.
const partBuffer = 1 << 20

// partReader is the body of one part: bytes [off, off+n) of src, read in
// large pieces. The HTTP client copies a body 32 KiB at a time; read
// straight from a file, that is one pread per 32 KiB. It seeks, so the SDK
// can rewind it to retry.
type partReader struct {
	src    io.ReaderAt
	off, n int64
	pos    int64  // next byte to return, relative to off
	buf    []byte // holds [bufAt, bufAt+len(buf)) of the part
	bufAt  int64
}

func newPartReader(src io.ReaderAt, off, n int64) *partReader {
	return &partReader{src: src, off: off, n: n}
}

func (r *partReader) Read(p []byte) (int, error) {
	if r.pos >= r.n {
		return 0, io.EOF
	}
	if r.pos < r.bufAt || r.pos >= r.bufAt+int64(len(r.buf)) {
		if r.buf == nil {
			r.buf = make([]byte, min(partBuffer, r.n))
		}
		size := min(int64(cap(r.buf)), r.n-r.pos)
		got, err := r.src.ReadAt(r.buf[:size], r.off+r.pos)
		if int64(got) < size {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		r.buf, r.bufAt = r.buf[:size], r.pos
	}
	c := copy(p, r.buf[r.pos-r.bufAt:])
	r.pos += int64(c)
	return c, nil
}

func (r *partReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.n
	default:
		return 0, errors.New("partReader: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("partReader: seek before start")
	}
	r.pos = offset
	return offset, nil
}
