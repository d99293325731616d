package vfs

import (
	"context"
	"io"
	"log/slog"

	"mount-ws/datacache"
)

// cachedFetch serves reads of one version of an object through the data
// cache (FilesConfig.DataCache), whole blocks at a time: blocks it has are
// read from local disk; runs of blocks it lacks are fetched from S3 with
// fetch, one GET a run, and kept.
func (fs *Files) cachedFetch(key func() string, etag string, size int64, fetch FetchFunc) FetchFunc {
	c := fs.cache
	const bs = datacache.BlockSize
	return func(ctx context.Context, p []byte, off int64) (int, error) {
		end := min(off+int64(len(p)), size)
		if off >= end {
			return 0, io.EOF
		}
		k := key()
		if k == "" {
			return fetch(ctx, p, off) // unlinked: it says so
		}
		v := c.Version(k, etag, size)
		last := (end - 1) / bs
		n := 0
		for b := off / bs; b <= last; {
			start := b * bs
			blen := min(bs, size-start)
			if v.Has(b) {
				// Straight into p when the block lies within the read.
				buf := p[max(start-off, 0):]
				inside := start >= off && start+blen <= end
				if !inside {
					buf = make([]byte, blen)
				}
				if got, ok := v.Get(b, buf[:blen]); ok && int64(got) == blen {
					fs.cacheHits.Add(1)
					if !inside {
						copyBlock(p, off, buf[:blen], start)
					}
					n += int(min(start+blen, end) - max(start, off))
					b++
					continue
				}
			}
			run := b + 1
			for run <= last && !v.Has(run) {
				run++
			}
			runEnd := min(run*bs, size)
			data := p[max(start-off, 0):]
			inside := start >= off && runEnd <= end
			if inside {
				data = data[:runEnd-start]
			} else {
				data = make([]byte, runEnd-start)
			}
			got, err := fetch(ctx, data, start)
			if got < len(data) {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF // the object was shorter than its size said
				}
				return n, err
			}
			fs.cacheMisses.Add(uint64(run - b))
			for i := b; i < run; i++ {
				lo := (i - b) * bs
				blk := data[lo:min(lo+bs, int64(len(data)))]
				if err := v.Put(i, blk); err != nil {
					// Logged once: a full or read-only disk would flood the log.
					fs.cacheWarn.Do(func() {
						fs.log.Warn("could not keep a block in the data cache; reads go to S3", slog.Any("err", err))
					})
				}
			}
			if !inside {
				copyBlock(p, off, data, start)
			}
			n += int(min(runEnd, end) - max(start, off))
			b = run
		}
		if n < len(p) {
			return n, io.ErrUnexpectedEOF
		}
		return n, nil
	}
}

// copyBlock copies the part of data (the object's bytes from start) that
// falls in the read of p at off into p.
func copyBlock(p []byte, off int64, data []byte, start int64) {
	lo, hi := max(start, off), min(start+int64(len(data)), off+int64(len(p)))
	if lo < hi {
		copy(p[lo-off:hi-off], data[lo-start:hi-start])
	}
}
