package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"mount-ws/internal/wsstack"
)

// runner measures workloads one at a time.
type runner struct {
	dir           string
	stack         *wsstack.Stack
	seeder        seeder // for warming the server, uncounted
	sdk           sdk
	rowTimeout    time.Duration
	runs          int
	logf          func(format string, a ...any)
	droppedCaches bool
}

// measure runs w through the SDK and then through each tool on a fresh
// mount, r.runs times over, and keeps each one's best run (see best). A
// failed measurement is recorded in the row; only an interrupted run
// returns an error.
func (r *runner) measure(ctx context.Context, w workload, tools []tool) (row, error) {
	rw := row{
		ID: w.ID, Title: w.Title, Unit: w.Unit, LowerIsBetter: w.LowerIsBetter, PeakRSS: w.PeakRSS,
		CPUPerMiB: w.ReadBytes > 0,
		SDKMethod: w.SDKMethod, MountMethod: w.MountMethod, Results: make(map[string]*result),
	}
	for range r.runs {
		res := r.measureSDK(ctx, w)
		r.logResult(w, sdkName, res)
		rw.Results[sdkName] = best(rw.Results[sdkName], res, w.LowerIsBetter)
		for _, t := range tools {
			if ctx.Err() != nil {
				return rw, ctx.Err()
			}
			res := r.measureMount(ctx, w, t)
			r.logResult(w, t.Name, res)
			rw.Results[t.Name] = best(rw.Results[t.Name], res, w.LowerIsBetter)
		}
	}
	rw.setRatios()
	return rw, ctx.Err()
}

// best returns the better of two runs of one measurement: a failure wins
// (it must not be hidden by a lucky run), then the faster run. The peak RSS
// is the highest of both; the CPU time per MiB is the kept run's own.
func best(a, b *result, lowerIsBetter bool) *result {
	if a == nil {
		return b
	}
	rss := max(a.PeakRSSKiB, b.PeakRSSKiB)
	out := b
	switch {
	case a.Error != "":
		out = a
	case b.Error != "":
		out = b
	case lowerIsBetter == (a.Value < b.Value):
		out = a
	}
	out.PeakRSSKiB = rss
	return out
}

func (r *runner) logResult(w workload, name string, res *result) {
	if res.Error != "" {
		r.logf("  %-6s %-9s failed: %s%s", w.ID, name, res.Error, res.untilThen())
		return
	}
	extra := ""
	if res.PeakRSSKiB > 0 {
		extra = fmt.Sprintf(", peak RSS %d MiB", res.PeakRSSKiB>>10)
	}
	if res.CPUMsPerMiB > 0 {
		extra += fmt.Sprintf(", CPU %.2f ms/MiB", res.CPUMsPerMiB)
	}
	value := formatValue(res.Value, w.Unit)
	if w.Unit != "s" {
		value += " " + w.Unit
	}
	r.logf("  %-6s %-9s %s  requests %s%s", w.ID, name, value, formatRequests(res.Requests), extra)
}

func (r *runner) measureSDK(ctx context.Context, w workload) *result {
	ctx, cancel := context.WithTimeout(ctx, r.timeout(w))
	defer cancel()
	if err := r.prepare(ctx, w); err != nil {
		return &result{Error: err.Error()}
	}
	v, err := w.SDK(ctx, r.sdk)
	res := &result{Value: v, Requests: r.stack.S3.Counts()}
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

// measureMount mounts t afresh, drops the page cache, runs w on the mount
// and unmounts. A measurement that outlives the row timeout (or Ctrl-C)
// kills the tool, which makes the readers blocked in the mount fail.
func (r *runner) measureMount(ctx context.Context, w workload, t tool) *result {
	mnt := filepath.Join(r.dir, "mnt", t.Name)
	logPath := filepath.Join(r.dir, "logs", t.Name+"-"+w.ID+".log")
	m := mountMode{readOnly: !w.Writes, mountWSArgs: w.MountWSArgs}
	if w.Reread {
		m.dataCache = filepath.Join(r.dir, "data-cache", t.Name)
		if err := os.RemoveAll(m.dataCache); err != nil {
			return &result{Error: err.Error()}
		}
		defer os.RemoveAll(m.dataCache)
	}
	p, err := startMount(t, mnt, logPath, m)
	if err != nil {
		return &result{Error: err.Error()}
	}
	defer p.stop()
	rctx, cancel := context.WithTimeout(ctx, r.timeout(w))
	defer cancel()
	if w.Reread {
		// The first read fills the tool's data cache, untimed and not
		// counted (prepare zeroes the counters).
		if _, err := w.Mount(rctx, mnt); err != nil {
			return &result{Error: "first read: " + err.Error()}
		}
	}
	if err := r.prepare(rctx, w); err != nil {
		return &result{Error: err.Error()}
	}
	p.rss.reset()
	pid := p.cmd.Process.Pid
	cpuStart, cpuErr := procCPU(pid)
	type outcome struct {
		v   float64
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		v, err := w.Mount(rctx, mnt)
		done <- outcome{v, err}
	}()
	var out outcome
	select {
	case out = <-done:
	case <-rctx.Done():
		p.kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			// A reader still blocked: it is abandoned with its (detached)
			// mount and ends with the process.
		}
		out = outcome{err: fmt.Errorf("stopped: %w", rctx.Err())}
	}
	res := &result{Value: out.v, Requests: r.stack.S3.Counts(), PeakRSSKiB: p.rss.peakKiB()}
	if out.err != nil {
		res.Error = out.err.Error()
	} else if w.ReadBytes > 0 && cpuErr == nil {
		res.CPUMsPerMiB = cpuMsPerMiB(pid, cpuStart, w.ReadBytes)
	}
	if err := p.stop(); err != nil && res.Error == "" {
		res.Error = err.Error()
	}
	return res
}

// timeout is the limit for one measurement of w: -row-timeout, or the
// row's own when longer.
func (r *runner) timeout(w workload) time.Duration {
	return max(r.rowTimeout, w.Timeout)
}

// prepare readies the machine for a measurement of w: page cache dropped,
// server warmed if w asks for it, request counters zeroed (after mounting:
// what mounting cost is not the workload's).
func (r *runner) prepare(ctx context.Context, w workload) error {
	r.dropCaches()
	if w.WarmPrefix != "" {
		if _, err := r.seeder.sizes(ctx, w.WarmPrefix); err != nil {
			return fmt.Errorf("warm the server: %w", err)
		}
	}
	if w.Setup != nil {
		if err := w.Setup(ctx, r.sdk); err != nil {
			return fmt.Errorf("set up: %w", err)
		}
	}
	r.stack.S3.ResetCounts()
	return nil
}

// dropCaches empties the page cache (root only), so reads come from the S3
// server's disk and no mount sees pages another one left.
func (r *runner) dropCaches() {
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err == nil {
		r.droppedCaches = true
	}
}
