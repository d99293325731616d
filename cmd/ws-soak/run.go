package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"mount-ws/internal/detdata"
	"mount-ws/internal/devcmd"
	"mount-ws/internal/wsstack"
)

// options are ws-soak's flags.
type options struct {
	duration    time.Duration
	seed        uint64
	dataDir     string
	keep        bool
	jsonFile    string
	mountWS     string
	workers     int
	files       int
	readers     int
	maxFault    time.Duration
	retryEvery  time.Duration
	credsWait   time.Duration
	quietFaults bool
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fl := flag.NewFlagSet("ws-soak", flag.ContinueOnError)
	fl.SetOutput(stderr)
	fl.Usage = func() {
		fmt.Fprint(stderr, `Usage: ws-soak [flags]

Mounts a local workspace with mount-ws, injects faults at random while a
workload writes, appends, reads, renames and deletes, then unmounts and
checks the bucket byte for byte against a model of what must be there.
Exits non-zero on lost bytes, unexpected objects, or an error the README
does not allow. Needs root and /dev/fuse. See docs/RELIABILITY.md.

Flags:
`)
		fl.PrintDefaults()
	}
	fl.DurationVar(&o.duration, "duration", 2*time.Minute, "how long the workload runs under faults (the check and unmount come after)")
	fl.Uint64Var(&o.seed, "seed", 0, "seed of the workload and fault choices (default: from the clock; printed)")
	fl.StringVar(&o.dataDir, "data", "", "data dir for the S3 server, the mount, its cache and log (default: a temporary dir under /tmp, removed after the run unless -keep); the workspace is emptied first")
	fl.BoolVar(&o.keep, "keep", false, "keep the temporary data dir (its path is printed)")
	fl.StringVar(&o.jsonFile, "json", "", "also write the results as JSON to this file")
	fl.StringVar(&o.mountWS, "mount-ws", "", "mount-ws binary (default: next to ws-soak, else $PATH)")
	fl.IntVar(&o.workers, "workers", 6, "writers, each with a directory of its own")
	fl.IntVar(&o.files, "files", 8, "files per writer")
	fl.IntVar(&o.readers, "readers", 2, "readers of files seeded before the mount")
	fl.DurationVar(&o.maxFault, "max-fault", 14*time.Second, "longest fault; above --credentials-wait, an API outage makes operations fail")
	fl.DurationVar(&o.retryEvery, "upload-retry-interval", 2*time.Second, "mount-ws --upload-retry-interval")
	fl.DurationVar(&o.credsWait, "credentials-wait", 10*time.Second, "mount-ws --credentials-wait")
	fl.BoolVar(&o.quietFaults, "quiet", false, "do not print each fault as it is injected")
	if err := fl.Parse(args); err != nil {
		return o, err
	}
	if fl.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	if o.workers < 1 || o.files < 2 || o.readers < 0 || o.maxFault <= time.Second {
		return o, errors.New("-workers must be at least 1, -files 2, -readers 0, -max-fault over 1s")
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	// The S3 server changes the working directory: make paths absolute.
	for _, p := range []*string{&o.dataDir, &o.mountWS, &o.jsonFile} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return o, err
			}
			*p = abs
		}
	}
	return o, nil
}

// The workspace the soak run mounts; its credentials last one second.
const (
	soakOrg  = "soak"
	soakWS   = "ws"
	credsTTL = time.Second
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	began := time.Now()
	opts, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%7.1fs  "+format+"\n", append([]any{time.Since(began).Seconds()}, a...)...)
	}
	bin, err := devcmd.FindMountWS(opts.mountWS)
	if err != nil {
		return err
	}
	dir, cleanupDir, err := devcmd.DataDir(opts.dataDir, "ws-soak-", opts.keep, stderr, isMountPoint)
	if err != nil {
		return err
	}
	defer func() {
		if err := cleanupDir(); err != nil {
			logf("ws-soak: %v", err)
		}
	}()
	mnt, cacheDir := filepath.Join(dir, "mnt"), filepath.Join(dir, "cache")
	for _, d := range []string{mnt, cacheDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	tokenFile := filepath.Join(dir, "token")
	token, err := wsstack.LoadOrCreateToken(tokenFile, "wssoak_")
	if err != nil {
		return err
	}
	stack, err := wsstack.Start(ctx, wsstack.Config{
		DataDir:    filepath.Join(dir, "s3"),
		TTL:        credsTTL,
		Workspaces: []wsstack.Workspace{{Org: soakOrg, WS: soakWS, Tokens: []string{token}}},
	})
	if err != nil {
		return fmt.Errorf("start local workspace: %w", err)
	}
	defer stack.Close()
	bucket, prefix := wsstack.DefaultBucket, soakOrg+"/"+soakWS+"/"
	root := stack.RootClient()
	if err := emptyWorkspace(ctx, root, bucket, prefix); err != nil {
		return err
	}
	seeded, err := seedReadOnly(ctx, root, bucket, prefix)
	if err != nil {
		return err
	}

	rep := report{
		Command: "ws-soak " + strings.Join(args, " "), Date: began, Seed: opts.seed,
		Duration: opts.duration.String(), CredentialsTTL: credsTTL.String(),
	}
	mountArgs := []string{"--foreground", "--api-url", stack.APIURL(), "--token-file", tokenFile,
		"--cache-dir", cacheDir, "--upload-retry-interval", opts.retryEvery.String(),
		"--credentials-wait", opts.credsWait.String(), soakOrg + "/" + soakWS, mnt}
	rep.MountCommand = "mount-ws " + strings.Join(mountArgs, " ")
	p, err := startMount(bin, mountArgs, mnt, filepath.Join(dir, "mount-ws.log"))
	if err != nil {
		return err
	}
	defer func() {
		if isMountPoint(mnt) {
			p.kill()
		}
	}()
	var markers []string
	for i := range opts.workers {
		d := fmt.Sprintf("w%d", i)
		if err := os.Mkdir(filepath.Join(mnt, d), 0o755); err != nil {
			return fmt.Errorf("mkdir before the faults: %w", err)
		}
		markers = append(markers, d+"/")
	}
	rep.RSSStartKiB = p.rssKiB()
	logf("mounted %s (seed %d, %d writers × %d files, %d readers, credentials last %v); running for %v",
		mnt, opts.seed, opts.workers, opts.files, opts.readers, credsTTL, opts.duration)

	trace, err := os.Create(filepath.Join(dir, "ops.log"))
	if err != nil {
		return err
	}
	defer trace.Close()
	m, rec := newModel(), newRecorder(trace)
	sched := &faultSchedule{
		stack: stack, rng: rand.New(rand.NewPCG(opts.seed, 1)), maxFault: opts.maxFault,
		logf: func(format string, a ...any) {
			rec.tracef(format, a...)
			if !opts.quietFaults {
				logf(format, a...)
			}
		},
	}
	workCtx, stopWork := context.WithTimeout(ctx, opts.duration)
	defer stopWork()
	var wg sync.WaitGroup
	schedDone := make(chan error, 1)
	go func() { schedDone <- sched.run(workCtx) }()
	for i := range opts.workers {
		w := &worker{
			mnt: mnt, dir: fmt.Sprintf("w%d", i), files: opts.files, model: m, rec: rec,
			rng: rand.New(rand.NewPCG(opts.seed, uint64(100+i))), seed: uint64(i+1) << 40,
		}
		wg.Go(func() { w.run(workCtx) })
	}
	for i := range opts.readers {
		rng := rand.New(rand.NewPCG(opts.seed, uint64(1000+i)))
		wg.Go(func() { readLoop(workCtx, mnt, seeded, rec, rng) })
	}
	workDone := make(chan struct{})
	go func() { wg.Wait(); close(workDone) }()
	rep.RSSPeakKiB = watch(workCtx, workDone, p, rec, logf)

	if err := <-schedDone; err != nil {
		return err
	}
	logf("faults cleared; waiting for the operations in progress")
	select {
	case <-workDone:
	case <-time.After(3 * time.Minute):
		rep.Stuck = "operations still blocked in the mount 3 minutes after the faults were cleared"
		logf("%s; killing mount-ws", rep.Stuck)
		p.kill()
		<-workDone
	}
	rep.RSSEndKiB = p.rssKiB()
	rep.Seconds = time.Since(began).Seconds()
	if rep.Stuck == "" {
		logf("unmounting (mount-ws uploads what is left)")
		if err := p.unmount(3 * time.Minute); err != nil {
			rep.MountExit = err.Error()
		}
	}
	logf("checking the bucket against the model")
	v, err := checkBucket(context.WithoutCancel(ctx), root, bucket, prefix, m.snapshot(), seeded, markers)
	if err != nil {
		return err
	}
	rep.fill(rec, sched.history(), v)
	rep.writeText(stdout)
	if opts.jsonFile != "" {
		if err := rep.writeJSON(opts.jsonFile); err != nil {
			return err
		}
	}
	return rep.failure()
}

// watch prints progress every 30 s and samples mount-ws's RSS every
// second until the workload is done; it returns the peak.
func watch(ctx context.Context, done <-chan struct{}, p *mountProc, rec *recorder, logf func(string, ...any)) int64 {
	var peak int64
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-done:
			return peak
		case <-tick.C:
		}
		peak = max(peak, p.rssKiB())
		if n%30 == 0 && ctx.Err() == nil {
			ops, errs := rec.totals()
			logf("%d operations, %d errors, mount-ws RSS %d MiB", ops, errs, p.rssKiB()>>10)
		}
	}
}

// seedReadOnly puts the files the readers read, straight into the bucket.
func seedReadOnly(ctx context.Context, cl *s3.Client, bucket, prefix string) ([]roObject, error) {
	sizes := []int64{4 << 10, 300 << 10, 3 << 20, 9 << 20, 20 << 20, 40 << 20}
	var objs []roObject
	for i, size := range sizes {
		o := roObject{Path: fmt.Sprintf("seeded/s%d.bin", i), Seg: segment{Seed: uint64(9000 + i), Size: size}}
		key := prefix + o.Path
		if _, err := cl.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &bucket, Key: &key, Body: detdata.New(o.Seg.Seed, size), ContentLength: aws.Int64(size),
		}); err != nil {
			return nil, fmt.Errorf("seed %s: %w", key, err)
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// emptyWorkspace removes what an earlier run on a kept data dir left: every
// object and incomplete upload under prefix.
func emptyWorkspace(ctx context.Context, cl *s3.Client, bucket, prefix string) error {
	pg := s3.NewListObjectsV2Paginator(cl, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("empty the workspace: %w", err)
		}
		for _, o := range page.Contents {
			if _, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key}); err != nil {
				return fmt.Errorf("empty the workspace: %w", err)
			}
		}
	}
	up, err := cl.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		return fmt.Errorf("empty the workspace: %w", err)
	}
	for _, u := range up.Uploads {
		if _, err := cl.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId}); err != nil {
			return fmt.Errorf("empty the workspace: %w", err)
		}
	}
	return nil
}
