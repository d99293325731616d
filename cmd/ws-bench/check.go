package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"mount-ws/internal/detdata"
)

// checker compares bytes read with the detdata content they should be. All
// paths (SDK and every mount) use the same checker, so checking costs them
// the same CPU. A disabled checker accepts everything. It is safe for
// concurrent use.
type checker struct {
	enabled bool
	// wants holds *[checkSlice]byte buffers for the expected content, so
	// checking does not allocate.
	wants *sync.Pool
}

// checkSlice is how much content check generates and compares at a time.
const checkSlice = 256 << 10

func newChecker(enabled bool) checker {
	return checker{enabled: enabled, wants: &sync.Pool{New: func() any { return new([checkSlice]byte) }}}
}

// check reports whether got is the content of o at off.
func (c checker) check(o object, off int64, got []byte) error {
	if !c.enabled {
		return nil
	}
	want := c.wants.Get().(*[checkSlice]byte)
	defer c.wants.Put(want)
	src := detdata.New(o.Seed, o.Size)
	for done := 0; done < len(got); done += checkSlice {
		g := got[done:min(done+checkSlice, len(got))]
		w := want[:len(g)]
		at := off + int64(done)
		if n, _ := src.ReadAt(w, at); n < len(g) {
			return fmt.Errorf("%s: %d bytes at %d run past its size %d", o.Key, len(g), at, o.Size)
		}
		if bytes.Equal(g, w) {
			continue
		}
		for i := range g {
			if g[i] != w[i] {
				return fmt.Errorf("%s: byte %d differs: got %#x, want %#x", o.Key, at+int64(i), g[i], w[i])
			}
		}
	}
	return nil
}

// readBufSize is the application's read size for sequential reads.
const readBufSize = 1 << 20

// readSequential reads the file at path from start to end with 1 MiB
// reads, as an application streaming a file would, and checks every byte
// against o. Reading and checking overlap: checks run on other goroutines
// (one per CPU), so the read loop never waits for them unless 16 chunks are
// pending. It returns how many bytes it read.
func (c checker) readSequential(ctx context.Context, path string, o object) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()

	type chunk struct {
		off int64
		buf []byte
	}
	const nbufs = 16
	free := make(chan []byte, nbufs)
	for range nbufs {
		free <- make([]byte, readBufSize)
	}
	jobs := make(chan chunk, nbufs)
	g, gctx := errgroup.WithContext(ctx)
	for range runtime.NumCPU() {
		g.Go(func() error {
			for ch := range jobs {
				if err := c.check(o, ch.off, ch.buf); err != nil {
					return err
				}
				free <- ch.buf[:cap(ch.buf)]
			}
			return nil
		})
	}
	var total int64
	g.Go(func() error {
		defer close(jobs)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-gctx.Done():
				return gctx.Err()
			}
			n, err := io.ReadFull(f, buf)
			if n > 0 {
				jobs <- chunk{total, buf[:n]}
				total += int64(n)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read %s at %d: %w", path, total, err)
			}
		}
	})
	if err := g.Wait(); err != nil {
		return total, err
	}
	if total != o.Size {
		return total, fmt.Errorf("read %s: %d bytes, want %d", path, total, o.Size)
	}
	return total, nil
}
