package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// report is what one run did and found; it is what -json writes.
type report struct {
	Date           time.Time `json:"date"`
	Command        string    `json:"command"`
	MountCommand   string    `json:"mount_command"`
	Seed           uint64    `json:"seed"`
	Duration       string    `json:"duration"` // of the workload under faults
	CredentialsTTL string    `json:"credentials_ttl"`
	Seconds        float64   `json:"seconds"` // start to the end of the workload

	Ops         map[string]opCount `json:"ops"`          // by kind
	SlowestOp   string             `json:"slowest_op"`   // kind and duration
	Faults      map[string]int     `json:"faults"`       // by kind ("s3-503 PUT")
	FaultsClass map[string]int     `json:"faults_class"` // by class ("s3-503")
	FaultTime   float64            `json:"fault_seconds"`
	Errors      []errorGroup       `json:"errors"`
	Unjustified []appError         `json:"unjustified,omitempty"`
	Bucket      verdict            `json:"bucket"`

	RSSStartKiB int64 `json:"rss_start_kib"`
	RSSEndKiB   int64 `json:"rss_end_kib"`
	RSSPeakKiB  int64 `json:"rss_peak_kib"`
	// MountExit is mount-ws's failure to unmount cleanly, if any.
	MountExit string `json:"mount_exit,omitempty"`
	// Stuck says operations never returned after the faults were cleared.
	Stuck string `json:"stuck,omitempty"`
}

func (r *report) fill(rec *recorder, faults []fault, v verdict) {
	rec.mu.Lock()
	r.Ops = make(map[string]opCount, len(rec.ops))
	for k, c := range rec.ops {
		r.Ops[k] = *c
	}
	errs := slices.Clone(rec.errs)
	r.SlowestOp = fmt.Sprintf("%s, %v", rec.slowOp, rec.slowest.Round(time.Millisecond))
	rec.mu.Unlock()
	r.Faults, r.FaultsClass = make(map[string]int), make(map[string]int)
	for _, f := range faults {
		r.Faults[f.Kind]++
		class, _, _ := strings.Cut(f.Kind, " ")
		r.FaultsClass[class]++
		r.FaultTime += f.End.Sub(f.Start).Seconds()
	}
	r.Errors, r.Unjustified = groupErrors(errs, faults)
	r.Bucket = v
}

// failure is the run's verdict as an error: nil when nothing was lost,
// nothing unexpected is in the bucket, every error was allowed and
// mount-ws unmounted cleanly.
func (r *report) failure() error {
	var errs []error
	if r.Bucket.BytesLost > 0 || len(r.Bucket.Mismatches) > 0 {
		errs = append(errs, fmt.Errorf("%d bytes lost, %d paths not as the model says", r.Bucket.BytesLost, len(r.Bucket.Mismatches)))
	}
	if len(r.Bucket.Unexpected) > 0 {
		errs = append(errs, fmt.Errorf("%d unexpected objects", len(r.Bucket.Unexpected)))
	}
	if len(r.Unjustified) > 0 {
		errs = append(errs, fmt.Errorf("%d errors the README does not allow", len(r.Unjustified)))
	}
	if r.MountExit != "" {
		errs = append(errs, errors.New(r.MountExit))
	}
	if r.Stuck != "" {
		errs = append(errs, errors.New(r.Stuck))
	}
	return errors.Join(errs...)
}

func (r *report) writeText(w io.Writer) {
	total, failed := 0, 0
	for _, c := range r.Ops {
		total += c.OK + c.Failed
		failed += c.Failed
	}
	fmt.Fprintf(w, "\n%s\nseed %d, workload %s under faults (credentials last %s), %.0f s in all\n",
		r.Command, r.Seed, r.Duration, r.CredentialsTTL, r.Seconds)
	fmt.Fprintf(w, "\nOperations: %d (%d with an error); slowest: %s\n", total, failed, r.SlowestOp)
	for _, k := range slices.Sorted(maps.Keys(r.Ops)) {
		fmt.Fprintf(w, "  %-12s %7d ok %6d failed\n", k, r.Ops[k].OK, r.Ops[k].Failed)
	}
	n := 0
	for _, c := range r.Faults {
		n += c
	}
	fmt.Fprintf(w, "\nFaults injected: %d, in force %.0f s in all\n", n, r.FaultTime)
	for _, k := range slices.Sorted(maps.Keys(r.FaultsClass)) {
		fmt.Fprintf(w, "  %-12s %4d\n", k, r.FaultsClass[k])
	}
	fmt.Fprintf(w, "  by operation:")
	for _, k := range slices.Sorted(maps.Keys(r.Faults)) {
		fmt.Fprintf(w, " %s ×%d;", k, r.Faults[k])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "\nErrors seen by the workload:\n")
	for _, g := range r.Errors {
		why := g.Why
		if why == "" {
			why = "NOT ALLOWED by the README"
		}
		fmt.Fprintf(w, "  %-8s %-9s %6d  %s\n", g.Op, g.Errno, g.Count, why)
		if len(g.Faults) > 0 {
			fmt.Fprintf(w, "  %18s faults in force: %v\n", "", g.Faults)
		}
	}
	for _, e := range r.Unjustified {
		fmt.Fprintf(w, "  not allowed: %s %s %s at %s: %s\n", e.Op, e.Errno, e.Path, e.End.Format("15:04:05.000"), e.Detail)
	}
	v := r.Bucket
	fmt.Fprintf(w, "\nBucket: %d objects, %d bytes compared; %d paths written, %d with more than one allowed content; "+
		"%d saved after their close/fsync failed\n", v.Objects, v.CheckedBytes, v.Paths, v.Uncertain, v.SavedAfterEIO)
	fmt.Fprintf(w, "  bytes lost: %d; unexpected objects: %d; incomplete multipart uploads left: %d\n",
		v.BytesLost, len(v.Unexpected), v.IncompleteUploads)
	for _, m := range v.Mismatches {
		fmt.Fprintf(w, "  LOST: %s\n", m)
	}
	for _, u := range v.Unexpected {
		fmt.Fprintf(w, "  UNEXPECTED: %s\n", u)
	}
	fmt.Fprintf(w, "\nmount-ws RSS: %d MiB at start, %d MiB at end, %d MiB peak\n",
		r.RSSStartKiB>>10, r.RSSEndKiB>>10, r.RSSPeakKiB>>10)
	if r.MountExit != "" {
		fmt.Fprintf(w, "mount-ws did not unmount cleanly: %s\n", r.MountExit)
	}
	if r.Stuck != "" {
		fmt.Fprintf(w, "STUCK: %s\n", r.Stuck)
	}
}

func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write -json: %w", err)
	}
	return nil
}
