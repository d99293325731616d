package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"mount-ws/internal/detdata"
)

// workload is one row of the table: the same work done through the SDK (the
// ceiling) and through a mounted filesystem. Both functions return the
// row's value in Unit. A row that writes (issue 5) sets Writes, so it gets a
// read-write mount.
type workload struct {
	ID    string // short name for -workloads and the JSON output
	Title string
	Unit  string // MiB/s, IOPS, files/s or s
	// LowerIsBetter is set for times; the ratio to the SDK is then
	// SDK time / tool time, so a ratio above 1 always means faster.
	LowerIsBetter bool
	// PeakRSS rows report the peak RSS of each FUSE process during the
	// measurement (every process is sampled; these rows show it): the
	// large reads, where read-ahead buffers count, and listings of huge
	// directories, where every entry does.
	PeakRSS bool
	// ReadBytes, when set, is how much Mount reads; the row then reports
	// the CPU time (user+system) each FUSE process used during the
	// measurement, per MiB of it.
	ReadBytes int64
	// Writes rows are measured on a read-write mount.
	Writes bool
	// OptIn rows run only when -workloads names them: they would make
	// every run much longer (to seed or to measure).
	OptIn bool
	// Objects, when set, lists objects that only this row reads, beyond
	// the data set's; they are seeded only when the row is selected.
	Objects func() []object
	// MountWSArgs are more mount-ws flags for this row; the other tools
	// keep their defaults (say so in MountMethod).
	MountWSArgs []string
	// Reread rows mount each tool with its cache of file data on local
	// disk, read once untimed to fill it, drop the page cache, and
	// measure the second read (the SDK reads from S3 again).
	Reread bool
	// WarmPrefix, when set, is listed once (untimed, uncounted, straight
	// to the S3 server) after the page cache is dropped, so that listing
	// rows measure the client with the server's metadata in memory, as
	// on a real S3 service, rather than the local server's disk.
	WarmPrefix string
	// Timeout, when longer than -row-timeout, is the limit for one
	// measurement of this row.
	Timeout time.Duration
	// Setup, when set, runs before each measurement, untimed and not
	// counted (a row that changes a file starts from the same one).
	Setup func(ctx context.Context, s sdk) error
	// SDKMethod and MountMethod say how the row is measured, for the doc.
	SDKMethod, MountMethod string
	SDK                    func(ctx context.Context, s sdk) (float64, error)
	Mount                  func(ctx context.Context, mnt string) (float64, error)
}

// selected reports whether w runs when -workloads names ids: when it names
// none, every row but the opt-in ones.
func selected(w workload, ids []string) bool {
	if len(ids) == 0 {
		return !w.OptIn
	}
	return slices.Contains(ids, w.ID)
}

// bench holds what the mount side of the workloads needs.
type bench struct {
	data  dataset
	check checker
	fio   string // path of fio, or "" to use a Go pread loop
	// archive is the untar row's archive, written on first use.
	archive *untarArchive
}

// workloads lists every row, in table order.
func (b bench) workloads() []workload {
	d := b.data
	mib := func(n int64, el time.Duration) float64 { return float64(n) / (1 << 20) / el.Seconds() }
	pars := make([]object, d.ParCount)
	for i := range pars {
		pars[i] = d.par(i)
	}
	smalls := make([]object, d.SmallCount)
	for i := range smalls {
		smalls[i] = d.small(i)
	}
	rows := append([]workload{
		{
			ID: "seq", Title: fmt.Sprintf("Sequential read, %s", sizeName(d.BigSize)), Unit: "MiB/s", PeakRSS: true,
			SDKMethod:   fmt.Sprintf("ranged GETs of %s, %d at once", sizeName(sdkPartSize), sdkConcurrency),
			MountMethod: "one reader, 1 MiB reads",
			SDK: func(ctx context.Context, s sdk) (float64, error) {
				start := time.Now()
				n, err := s.parallelGet(ctx, []object{d.big()})
				return mib(n, time.Since(start)), err
			},
			Mount: func(ctx context.Context, mnt string) (float64, error) {
				start := time.Now()
				n, err := b.check.readSequential(ctx, filepath.Join(mnt, d.big().Key), d.big())
				return mib(n, time.Since(start)), err
			},
		},
		{
			ID: "par", Title: fmt.Sprintf("%d readers × %s, total", d.ParCount, sizeName(d.ParSize)), Unit: "MiB/s", PeakRSS: true,
			ReadBytes:   int64(d.ParCount) * d.ParSize,
			SDKMethod:   fmt.Sprintf("ranged GETs of %s, %d at once over all objects", sizeName(sdkPartSize), sdkConcurrency),
			MountMethod: "one reader per file, 1 MiB reads",
			SDK: func(ctx context.Context, s sdk) (float64, error) {
				start := time.Now()
				n, err := s.parallelGet(ctx, pars)
				return mib(n, time.Since(start)), err
			},
			Mount: func(ctx context.Context, mnt string) (float64, error) {
				start := time.Now()
				g, gctx := errgroup.WithContext(ctx)
				for _, o := range pars {
					g.Go(func() error {
						_, err := b.check.readSequential(gctx, filepath.Join(mnt, o.Key), o)
						return err
					})
				}
				err := g.Wait()
				return mib(int64(len(pars))*d.ParSize, time.Since(start)), err
			},
		},
		b.randWorkload("rand", 4<<10, "IOPS"),
		b.randWorkload("rand1m", 1<<20, "MiB/s"),
		b.lsWorkload("ls", d.flatDir(), d.FlatCount),
		b.lsHugeWorkload(),
		{
			ID: "find", Title: fmt.Sprintf("find, %s objects in %d dirs", countName(d.TreeCount), d.TreeDirs), Unit: "s", LowerIsBetter: true,
			SDKMethod: "ListObjectsV2 pages of the whole tree, no delimiter", WarmPrefix: d.treeDir() + "/",
			MountMethod: "find DIR >/dev/null",
			SDK: func(ctx context.Context, s sdk) (float64, error) {
				start := time.Now()
				n, err := s.list(ctx, d.treeDir()+"/", false)
				el := time.Since(start).Seconds()
				if err == nil && n != d.TreeCount {
					err = fmt.Errorf("listed %d keys, want %d", n, d.TreeCount)
				}
				return el, err
			},
			Mount: func(ctx context.Context, mnt string) (float64, error) {
				// find prints the top directory, each directory and each file.
				return timeCommand(ctx, 1+d.TreeDirs+d.TreeCount, "find", filepath.Join(mnt, d.treeDir()))
			},
		},
		b.catOneWorkload(),
		{
			ID: "small", Title: fmt.Sprintf("Read %s files of %s, 8 readers", countName(d.SmallCount), sizeName(d.SmallSize)), Unit: "files/s",
			SDKMethod:   "GetObject, 8 at once",
			MountMethod: "open+read+close by known path, 8 at once",
			SDK: func(ctx context.Context, s sdk) (float64, error) {
				start := time.Now()
				err := s.getAll(ctx, smalls, 8)
				return float64(len(smalls)) / time.Since(start).Seconds(), err
			},
			Mount: func(ctx context.Context, mnt string) (float64, error) {
				start := time.Now()
				err := b.readFiles(ctx, mnt, smalls, 8)
				return float64(len(smalls)) / time.Since(start).Seconds(), err
			},
		},
		{
			ID: "write", Title: fmt.Sprintf("Sequential write, new %s file, until close", sizeName(d.BigSize)), Unit: "MiB/s", Writes: true,
			SDKMethod:   fmt.Sprintf("multipart upload, parts of %s, %d at once", sizeName(sdkPartSize*2), sdkConcurrency),
			MountMethod: "1 MiB writes, then close(2) (durable when it returns)",
			SDK: func(ctx context.Context, s sdk) (float64, error) {
				start := time.Now()
				err := s.upload(ctx, writeKey(d, "sdk"), detdata.New(seedBig, d.BigSize), d.BigSize)
				return mib(d.BigSize, time.Since(start)), err
			},
			Mount: func(ctx context.Context, mnt string) (float64, error) {
				start := time.Now()
				err := writeFile(filepath.Join(mnt, writeKey(d, "mnt")), detdata.New(seedBig, d.BigSize), 1<<20)
				return mib(d.BigSize, time.Since(start)), err
			},
		},
		{
			ID: "create", Title: "Create 1,000 files of 4 KiB, 8 writers", Unit: "files/s", Writes: true,
			SDKMethod:   "PutObject, 8 at once",
			MountMethod: "create+write+close, 8 at once",
			SDK: func(ctx context.Context, s sdk) (float64, error) {
				dir := writeKey(d, "sdk-small")
				start := time.Now()
				err := forEach(ctx, 1000, 8, func(i int) error {
					body := detdata.New(uint64(i), 4096)
					_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + fmt.Sprintf("%s/f%04d", dir, i)), Body: body, ContentLength: aws.Int64(4096)})
					return err
				})
				return 1000 / time.Since(start).Seconds(), err
			},
			Mount: func(ctx context.Context, mnt string) (float64, error) {
				dir := filepath.Join(mnt, writeKey(d, "mnt-small"))
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return 0, err
				}
				start := time.Now()
				err := forEach(ctx, 1000, 8, func(i int) error {
					return writeFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), detdata.New(uint64(i), 4096), 4096)
				})
				return 1000 / time.Since(start).Seconds(), err
			},
		},
		b.untarWorkload(),
	}, b.patchWorkloads()...)
	for _, w := range rows {
		if w.ID == "seq" || w.ID == "small" {
			rows = append(rows, reread(w))
		}
	}
	return rows
}

// lsWorkload is ls -l of dir, a directory of count entries, titled with
// the count.
func (b bench) lsWorkload(id, dir string, count int) workload {
	return workload{
		ID: id, Title: fmt.Sprintf("ls -l, %s entries", countName(count)), Unit: "s", LowerIsBetter: true,
		SDKMethod: "ListObjectsV2 pages with delimiter /", WarmPrefix: dir + "/",
		MountMethod: "ls -l DIR >/dev/null",
		SDK: func(ctx context.Context, s sdk) (float64, error) {
			start := time.Now()
			n, err := s.list(ctx, dir+"/", true)
			el := time.Since(start).Seconds()
			if err == nil && n != count {
				err = fmt.Errorf("listed %d entries, want %d", n, count)
			}
			return el, err
		},
		Mount: func(ctx context.Context, mnt string) (float64, error) {
			// ls -l prints a "total" line, then one line per entry.
			return timeCommand(ctx, count+1, "ls", "-l", filepath.Join(mnt, dir))
		},
	}
}

// hugeTTL is mount-ws's --metadata-ttl in the ls200k row: shorter than
// the listing of its directory takes.
const hugeTTL = time.Second

// hugePageTime is what one listing page of the ls200k directory may take,
// for the row's timeout: the local server reads and sorts the whole
// directory for every page, which took 1.3 s on 2 busy CPUs (a listing of
// 200,000 entries, 4 minutes).
const hugePageTime = 3 * time.Second

// lsHugeWorkload is ls -l of a directory of d.HugeCount entries, with
// mount-ws keeping listings and attributes for less time than listing the
// directory takes. Its points are the request count (a listing that is
// stale before its last page arrives must not turn into a HEAD per entry)
// and the peak RSS (what every entry costs). It is opt-in: seeding the
// directory takes minutes, and so does each listing of it.
//
// No fault is injected: the local server takes far longer than the TTL to
// list the directory. Nor is the server warmed, since a warm listing would
// cost as much as the measurement: every path lists from the server's
// disk, with the page cache dropped.
func (b bench) lsHugeWorkload() workload {
	d := b.data
	w := b.lsWorkload("ls200k", d.hugeDir(), d.HugeCount)
	w.Title += fmt.Sprintf(", listing slower than --metadata-ttl %v", hugeTTL)
	w.PeakRSS, w.OptIn, w.Objects = true, true, d.hugeObjects
	w.Timeout = time.Duration(d.HugeCount/1000) * hugePageTime
	w.WarmPrefix = ""
	w.SDKMethod += fmt.Sprintf("; no delay injected (the local server takes far longer than %v to page through the directory), and the server not warmed first (that would take as long as the row)", hugeTTL)
	w.MountWSArgs = []string{"--metadata-ttl", hugeTTL.String()}
	w.MountMethod += fmt.Sprintf("; mount-ws with --metadata-ttl %v, the others with their defaults", hugeTTL)
	return w
}

// catOneWorkload reads one small file of a directory of d.CatCount, as the
// first thing on a fresh mount. Its point is the S3 request count: a file
// read by a known path need not cost a listing of its directory.
func (b bench) catOneWorkload() workload {
	d := b.data
	o := d.cat(d.CatCount / 2)
	return workload{
		ID: "catone", Title: fmt.Sprintf("cat one file in a %s-entry directory, fresh mount", countName(d.CatCount)),
		Unit: "s", LowerIsBetter: true, WarmPrefix: d.catDir() + "/",
		SDKMethod:   "one GetObject by key",
		MountMethod: "open+read+close by full path, the first access to the mount",
		SDK: func(ctx context.Context, s sdk) (float64, error) {
			start := time.Now()
			err := s.getAll(ctx, []object{o}, 1)
			return time.Since(start).Seconds(), err
		},
		Mount: func(ctx context.Context, mnt string) (float64, error) {
			start := time.Now()
			err := b.readFiles(ctx, mnt, []object{o}, 1)
			return time.Since(start).Seconds(), err
		},
	}
}

// randWorkload is a row of random reads of bs bytes from the big file, one
// at a time, for d.RandRuntime, reported in unit: "IOPS" (reads per second)
// or "MiB/s".
func (b bench) randWorkload(id string, bs int64, unit string) workload {
	d := b.data
	method := "Go pread loop, 1 thread"
	if b.fio != "" {
		method = "fio psync, 1 job"
	}
	// inUnit turns reads per second into the row's unit.
	inUnit := func(iops float64, err error) (float64, error) {
		if unit == "MiB/s" {
			return iops * float64(bs) / (1 << 20), err
		}
		return iops, err
	}
	return workload{
		ID: id, Title: fmt.Sprintf("Random %s reads, %s file", sizeName(bs), sizeName(d.BigSize)), Unit: unit,
		SDKMethod:   fmt.Sprintf("%s ranged GETs, one at a time, %v", sizeName(bs), d.RandRuntime),
		MountMethod: fmt.Sprintf("%s, %v", method, d.RandRuntime),
		SDK: func(ctx context.Context, s sdk) (float64, error) {
			return inUnit(s.randomReads(ctx, d.big(), bs, d.RandRuntime))
		},
		Mount: func(ctx context.Context, mnt string) (float64, error) {
			path := filepath.Join(mnt, d.big().Key)
			if b.fio != "" {
				return inUnit(runFio(ctx, b.fio, path, d.BigSize, bs, d.RandRuntime))
			}
			return inUnit(b.preadLoop(path, d.big(), bs, d.RandRuntime))
		},
	}
}

// reread is a read row again, as the second read through a data cache on
// local disk (issue 13).
func reread(w workload) workload {
	w.ID += "2"
	w.Title = "Second read, data cache on: " + w.Title
	w.MountMethod += "; an untimed first read filled the tool's data cache on local disk"
	w.Reread = true
	return w
}

// writeKey is a fresh key per measurement, so runs stay independent.
func writeKey(d dataset, who string) string {
	return fmt.Sprintf("%s/writes/%s-%d", d.Name, who, time.Now().UnixNano())
}

// writeFile writes all of src to path in chunks of chunk bytes and closes
// it; a failed close is a failed write.
func writeFile(path string, src io.Reader, chunk int) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(struct{ io.Writer }{f}, src, make([]byte, chunk)); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// forEach runs fn(0..n-1), conc at a time.
func forEach(ctx context.Context, n, conc int, fn func(i int) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(i) })
	}
	return g.Wait()
}

// readFiles reads every object as a whole file under mnt, conc at a time,
// and checks its bytes.
func (b bench) readFiles(ctx context.Context, mnt string, objs []object, conc int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for _, o := range objs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			got, err := os.ReadFile(filepath.Join(mnt, o.Key))
			if err != nil {
				return err
			}
			if int64(len(got)) != o.Size {
				return fmt.Errorf("read %s: %d bytes, want %d", o.Key, len(got), o.Size)
			}
			return b.check.check(o, 0, got)
		})
	}
	return g.Wait()
}

// preadLoop reads blocks of bs bytes at random bs-aligned offsets of the
// file, one at a time, for d, and returns reads per second. It stands in
// for fio.
func (b bench) preadLoop(path string, o object, bs int64, d time.Duration) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return randomBlocks(b.check, o, bs, d, func(buf []byte, off int64) error {
		if _, err := f.ReadAt(buf, off); err != nil {
			return fmt.Errorf("pread %s at %d: %w", path, off, err)
		}
		return nil
	})
}

// randomBlocks calls read for blocks of bs bytes at random bs-aligned
// offsets of o, one at a time, for d, checks each block, and returns reads
// per second. The offsets are the same sequence on every path, so the SDK
// and every mount read the same blocks. Each block is read once before any
// is read again (as fio does), so a mount's page cache serves no repeats
// that the SDK pays for: with 1 MiB blocks, drawing with replacement made
// a third of the reads repeats.
func randomBlocks(c checker, o object, bs int64, d time.Duration, read func(buf []byte, off int64) error) (float64, error) {
	rng := rand.New(rand.NewPCG(7, 7))
	buf := make([]byte, bs)
	blocks := int(o.Size / bs)
	order := rng.Perm(blocks) // before the clock starts: 262,144 ints for 4 KiB blocks
	start := time.Now()
	var n int
	for time.Since(start) < d {
		if n > 0 && n%blocks == 0 {
			order = rng.Perm(blocks)
		}
		off := int64(order[n%blocks]) * bs
		if err := read(buf, off); err != nil {
			return 0, err
		}
		if err := c.check(o, off, buf); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// runFio runs fio's random-read job with blocks of bs bytes on path and
// returns its read IOPS.
func runFio(ctx context.Context, fio, path string, size, bs int64, d time.Duration) (float64, error) {
	args := fioArgs(path, size, bs, d)
	out, err := exec.CommandContext(ctx, fio, args...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("fio: %w: %s", err, tail(out, 500))
	}
	iops, err := parseFioIOPS(out)
	if err != nil {
		return 0, fmt.Errorf("fio: %w", err)
	}
	return iops, nil
}

func fioArgs(path string, size, bs int64, d time.Duration) []string {
	return []string{
		"--name=r", "--filename=" + path, "--rw=randread", "--bs=" + strconv.FormatInt(bs, 10), "--direct=0",
		"--size=" + strconv.FormatInt(size, 10), "--runtime=" + strconv.Itoa(int(d.Seconds())),
		"--time_based", "--ioengine=psync", "--readonly", "--output-format=json",
	}
}

// timeCommand runs name with args, output counted and dropped, and returns
// how long it took. It fails unless the command exits 0 and prints exactly
// wantLines lines, so an incomplete listing does not pass for a fast one.
func timeCommand(ctx context.Context, wantLines int, name string, args ...string) (float64, error) {
	var lines lineCounter
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &lines
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	el := time.Since(start).Seconds()
	if err != nil {
		return el, fmt.Errorf("%s: %w: %s", name, err, tail(stderr.Bytes(), 500))
	}
	if int(lines) != wantLines {
		return el, fmt.Errorf("%s: %d lines of output, want %d", name, lines, wantLines)
	}
	return el, nil
}

// lineCounter is an io.Writer that counts newlines and drops the rest.
type lineCounter int

func (c *lineCounter) Write(p []byte) (int, error) {
	*c += lineCounter(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// tail returns at most the last n bytes of b, as a string.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}
