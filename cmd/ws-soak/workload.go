package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"mount-ws/internal/detdata"
)

// appError is an error the workload saw from a system call on the mount.
type appError struct {
	Op    string    `json:"op"`    // open, write, fsync, close, read, rename, unlink, readdir
	Errno string    `json:"errno"` // EIO, ENOENT, ...; WRONGDATA for a read of other bytes
	Path  string    `json:"path"`
	Start time.Time `json:"start"` // when the operation (open … close) began
	End   time.Time `json:"end"`
	// MayBeAbsent and Pending are the model's state of the path when the
	// operation began, for judging ENOENT and ESTALE.
	MayBeAbsent bool   `json:"may_be_absent,omitempty"`
	Pending     bool   `json:"pending,omitempty"`
	Detail      string `json:"detail"`
	// Why is the README's allowance for it; empty when it has none.
	Why string `json:"why,omitempty"`
}

// opCount counts one kind of workload operation.
type opCount struct {
	OK     int `json:"ok"`
	Failed int `json:"failed"`
}

// recorder collects what the workload did. Safe for concurrent use.
type recorder struct {
	mu      sync.Mutex
	ops     map[string]*opCount // by kind; guarded by mu
	errs    []appError          // guarded by mu
	slowest time.Duration       // guarded by mu
	slowOp  string              // guarded by mu
	trace   io.Writer           // one line per operation; guarded by mu
}

func newRecorder(trace io.Writer) *recorder {
	return &recorder{ops: make(map[string]*opCount), trace: trace}
}

// tracef adds a line to the trace of operations (the data dir's ops.log),
// which tells what happened to a path the check finds wrong.
func (r *recorder) tracef(format string, a ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.trace, time.Now().Format("15:04:05.000 ")+format+"\n", a...)
}

func (r *recorder) count(kind string, start time.Time, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.ops[kind]
	if c == nil {
		c = &opCount{}
		r.ops[kind] = c
	}
	if failed {
		c.Failed++
	} else {
		c.OK++
	}
	if d := time.Since(start); d > r.slowest {
		r.slowest, r.slowOp = d, kind
	}
}

func (r *recorder) fail(e appError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, e)
}

// errnoName names err's errno ("EIO"), or says it has none.
func errnoName(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		if name := errnoNames[en]; name != "" {
			return name
		}
		return fmt.Sprintf("errno %d", int(en))
	}
	return "not an errno"
}

var errnoNames = map[syscall.Errno]string{
	syscall.EIO: "EIO", syscall.ENOENT: "ENOENT", syscall.ESTALE: "ESTALE", syscall.EINTR: "EINTR",
	syscall.EACCES: "EACCES", syscall.ENOSPC: "ENOSPC", syscall.ENOTCONN: "ENOTCONN",
	syscall.ENOTEMPTY: "ENOTEMPTY", syscall.EEXIST: "EEXIST", syscall.EINVAL: "EINVAL",
	syscall.ENOSYS: "ENOSYS", syscall.EPERM: "EPERM", syscall.EBADF: "EBADF",
	syscall.ECONNREFUSED: "ECONNREFUSED", syscall.ETIMEDOUT: "ETIMEDOUT", syscall.EAGAIN: "EAGAIN",
}

// worker runs random operations on the files of its own directory, which
// no other worker touches, so the model knows the order of every change.
type worker struct {
	mnt   string
	dir   string // relative to mnt
	files int
	model *model
	rec   *recorder
	rng   *rand.Rand
	seed  uint64 // next content seed; unique across workers
}

func (w *worker) path(i int) string { return fmt.Sprintf("%s/f%02d", w.dir, i) }

// run works until ctx ends; the operation in progress then completes.
func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		p := w.path(w.rng.IntN(w.files))
		st := w.model.get(p)
		exists := !st.mayBeAbsent() || len(st.Possible) > 1
		switch n := w.rng.IntN(100); {
		case n < 30 || !exists:
			w.write(p, st, w.rng.IntN(3) == 0)
		case n < 40:
			if c, ok := st.definite(); ok && !c.Absent {
				w.appendTo(p, st, c)
			}
		case n < 65:
			w.read(p, st)
		case n < 80:
			w.rename(p, w.path(w.rng.IntN(w.files)))
		case n < 92:
			w.remove(p, st)
		default:
			w.list()
		}
	}
}

// newSegment draws the size of a write: mostly small, some past the 16 MiB
// that mount-ws uploads in parts while written.
func (w *worker) newSegment() segment {
	w.seed++
	var size int64
	switch n := w.rng.IntN(100); {
	case n < 70:
		size = w.rng.Int64N(256 << 10)
	case n < 96:
		size = 256<<10 + w.rng.Int64N(4<<20)
	default:
		size = 17<<20 + w.rng.Int64N(24<<20)
	}
	return segment{Seed: w.seed, Size: size}
}

func (w *worker) failed(op, p string, st pathState, start time.Time, err error) {
	w.rec.fail(appError{
		Op: op, Errno: errnoName(err), Path: p, Start: start, End: time.Now(),
		MayBeAbsent: st.mayBeAbsent(), Pending: st.Pending, Detail: err.Error(),
	})
}

// write replaces p's content (O_TRUNC), with an fsync before close if
// sync.
func (w *worker) write(p string, st pathState, sync bool) {
	kind := "write"
	if sync {
		kind = "write+fsync"
	}
	w.writeContent(kind, p, st, os.O_CREATE|os.O_TRUNC, content{}, sync)
}

// appendTo adds to p's known content c (O_APPEND), which makes mount-ws
// download the old content first.
func (w *worker) appendTo(p string, st pathState, c content) {
	w.writeContent("append", p, st, os.O_APPEND, c, false)
}

func (w *worker) writeContent(kind, p string, st pathState, flags int, base content, sync bool) {
	start := time.Now()
	seg := w.newSegment()
	f, err := os.OpenFile(filepath.Join(w.mnt, p), os.O_WRONLY|flags, 0o644)
	if err != nil {
		w.failed("open", p, st, start, err)
		w.rec.tracef("%s %s: open %v", kind, p, err)
		w.rec.count(kind, start, true)
		return
	}
	written, werr := io.Copy(f, io.NewSectionReader(detdata.New(seg.Seed, seg.Size), 0, seg.Size))
	if werr != nil {
		w.failed("write", p, st, start, werr)
	}
	var serr error
	if sync {
		if serr = f.Sync(); serr != nil {
			w.failed("fsync", p, st, start, serr)
		}
	}
	cerr := f.Close()
	if cerr != nil {
		w.failed("close", p, st, start, cerr)
	}
	seg.Size = written
	w.model.wrote(p, base.appended(seg), serr != nil || cerr != nil)
	w.rec.tracef("%s %s: %v (write %v, fsync %v, close %v)", kind, p, base.appended(seg), werr, serr, cerr)
	w.rec.count(kind, start, werr != nil || serr != nil || cerr != nil)
}

// read reads p whole and checks it is one of the contents the model allows.
func (w *worker) read(p string, st pathState) {
	start := time.Now()
	b, err := os.ReadFile(filepath.Join(w.mnt, p))
	if err != nil {
		op := "read"
		var pe *os.PathError
		if errors.As(err, &pe) {
			op = pe.Op
		}
		w.failed(op, p, st, start, err)
		w.rec.tracef("read %s: %v", p, err)
		w.rec.count("read", start, true)
		return
	}
	for _, c := range st.Possible {
		if c.matches(b) {
			w.rec.count("read", start, false)
			return
		}
	}
	w.rec.fail(appError{
		Op: "read", Errno: "WRONGDATA", Path: p, Start: start, End: time.Now(), Pending: st.Pending,
		Detail: fmt.Sprintf("read %d bytes that are none of %v (%s)", len(b), st.Possible, prefixes(b, st.Possible)),
	})
	w.rec.tracef("read %s: %d bytes that are none of %v", p, len(b), st.Possible)
	w.rec.count("read", start, true)
}

func (w *worker) rename(from, to string) {
	if from == to {
		return
	}
	start := time.Now()
	st := w.model.get(from)
	err := os.Rename(filepath.Join(w.mnt, from), filepath.Join(w.mnt, to))
	if err != nil {
		w.failed("rename", from, st, start, err)
	}
	w.model.renamed(from, to, err == nil, errors.Is(err, syscall.ENOENT))
	w.rec.tracef("rename %s %s: %v; now %v", from, to, err, w.model.get(to).Possible)
	w.rec.count("rename", start, err != nil)
}

func (w *worker) remove(p string, st pathState) {
	start := time.Now()
	err := os.Remove(filepath.Join(w.mnt, p))
	if err != nil {
		w.failed("unlink", p, st, start, err)
	}
	w.model.deleted(p, err == nil, errors.Is(err, syscall.ENOENT))
	w.rec.tracef("delete %s: %v", p, err)
	w.rec.count("delete", start, err != nil)
}

func (w *worker) list() {
	start := time.Now()
	_, err := os.ReadDir(filepath.Join(w.mnt, w.dir))
	if err != nil {
		w.failed("readdir", w.dir, pathState{}, start, err)
	}
	w.rec.count("list", start, err != nil)
}

// roObject is a file seeded before the mount and never changed: readers
// read it whole and check every byte.
type roObject struct {
	Path string
	Seg  segment
}

// readLoop reads the seeded files at random until ctx ends.
func readLoop(ctx context.Context, mnt string, objs []roObject, rec *recorder, rng *rand.Rand) {
	for ctx.Err() == nil {
		o := objs[rng.IntN(len(objs))]
		start := time.Now()
		f, err := os.Open(filepath.Join(mnt, o.Path))
		if err == nil {
			err = detdata.Verify(f, o.Seg.Seed, o.Seg.Size)
			f.Close()
		}
		if err != nil {
			e := appError{Op: "read", Errno: errnoName(err), Path: o.Path, Start: start, End: time.Now(), Detail: err.Error()}
			var en syscall.Errno
			if !errors.As(err, &en) {
				e.Errno = "WRONGDATA"
			}
			rec.fail(e)
		}
		rec.count("read seeded", start, err != nil)
	}
}

// totals is how many operations ran so far, and how many errors were seen.
func (r *recorder) totals() (ops, errs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.ops {
		ops += c.OK + c.Failed
	}
	return ops, len(r.errs)
}

// prefixes says how many leading bytes of b agree with each content.
func prefixes(b []byte, cs []content) string {
	var parts []string
	for _, c := range cs {
		if c.Absent {
			continue
		}
		want, _ := io.ReadAll(io.LimitReader(c.reader(), int64(len(b))))
		n := 0
		for n < len(want) && want[n] == b[n] {
			n++
		}
		parts = append(parts, fmt.Sprintf("first %d bytes are those of %v", n, c))
	}
	return strings.Join(parts, "; ")
}
