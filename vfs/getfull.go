package vfs

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Getter reads ranges of objects: n bytes of key from off (to the end when
// n < 0), failing with bucket.ErrPrecondition if its ETag is no longer
// ifMatch (when set).
type Getter interface {
	Get(ctx context.Context, key string, off, n int64, ifMatch string) (io.ReadCloser, error)
}

// transferAttempts is how many GETs a range gets when transfers break off.
const transferAttempts = 3

// GetFull reads len(p) bytes of key at off into p, the version etag if
// set; fewer only where the object ends, with io.EOF or
// io.ErrUnexpectedEOF, as io.ReadFull. A transfer that breaks off (a
// reset connection, a body shorter than it said) is asked again for the
// rest, a few times: a job reading for hours must not get EIO for one
// dropped connection, and never a short read, which the kernel would
// take for the end of the file. After that, the error says so, and is
// not io.ErrUnexpectedEOF.
func GetFull(ctx context.Context, g Getter, key string, p []byte, off int64, etag string) (int, error) {
	got := 0
	var err error
	for range transferAttempts {
		var body io.ReadCloser
		body, err = g.Get(ctx, key, off+int64(got), int64(len(p)-got), etag)
		if err != nil {
			return got, err
		}
		var n int
		n, err = readUntilEOF(body, p[got:])
		body.Close()
		got += n
		switch {
		case got == len(p):
			return got, nil
		case errors.Is(err, io.EOF): // the answer ended where it said: the object does
			if got == 0 {
				return 0, io.EOF
			}
			return got, io.ErrUnexpectedEOF
		case ctx.Err() != nil:
			return got, ctx.Err()
		}
	}
	return got, fmt.Errorf("get %s: the transfer broke off %d times (at byte %d): %v", key, transferAttempts, off+int64(got), err)
}

// readUntilEOF fills p from r; unlike io.ReadFull it returns io.EOF only
// for an answer that ended where it said it would.
func readUntilEOF(r io.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
