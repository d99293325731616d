package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"mount-ws/internal/wsstack"
)

// s3Ops are the S3 operation kinds faults are injected on: every kind
// mount-ws sends.
var s3Ops = []wsstack.Op{
	wsstack.OpGet, wsstack.OpHead, wsstack.OpList, wsstack.OpPut, wsstack.OpCopy,
	wsstack.OpCreateMultipart, wsstack.OpUploadPart, wsstack.OpUploadPartCopy,
	wsstack.OpCompleteMultipart, wsstack.OpAbortMultipart, wsstack.OpListParts,
	wsstack.OpDelete, wsstack.OpDeleteObjects,
}

// fault is one injected fault and when it was in force.
type fault struct {
	Kind  string    `json:"kind"` // "api-503", "api-down", "s3-stall PUT", ...
	Start time.Time `json:"start"`
	End   time.Time `json:"end"` // when it was cleared
	// Stall is how long a stalled request waits, also after End.
	Stall time.Duration `json:"stall,omitempty"`
}

// reach is how long after End the fault may still make an operation fail:
// a request stalled just before End, the SDK's last retry, or an operation
// still waiting for credentials until the API's next retry (0–4 s).
func (f fault) reach() time.Duration {
	if f.Kind[:3] == "api" {
		return 5 * time.Second
	}
	return f.Stall + 2*time.Second
}

// faultSchedule injects one random fault at a time into the stack: quiet
// for a few seconds, a fault for a few seconds, cleared, and again.
type faultSchedule struct {
	stack *wsstack.Stack
	rng   *rand.Rand // used by run's goroutine only
	// maxFault bounds how long a fault lasts; the API may be down longer
	// than mount-ws's --credentials-wait, so that operations see its EIO.
	maxFault time.Duration
	logf     func(format string, a ...any)

	mu     sync.Mutex
	faults []fault // guarded by mu
}

// run injects faults until ctx ends, then clears every fault.
func (s *faultSchedule) run(ctx context.Context) error {
	defer s.stack.ClearFaults()
	for {
		quiet := time.Duration(1+s.rng.IntN(4)) * time.Second
		if !sleep(ctx, quiet) {
			return nil
		}
		d := time.Second + time.Duration(s.rng.Int64N(int64(s.maxFault-time.Second)))
		f := s.inject(d)
		s.logf("fault %-22s for %v", f.Kind, d.Round(100*time.Millisecond))
		sleep(ctx, d)
		if err := s.stack.ClearFaults(); err != nil {
			return fmt.Errorf("clear faults: %w", err)
		}
		f.End = time.Now()
		s.mu.Lock()
		s.faults = append(s.faults, f)
		s.mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
	}
}

// inject picks a fault at random and puts it in force for about d.
func (s *faultSchedule) inject(d time.Duration) fault {
	f := fault{Start: time.Now()}
	if s.rng.IntN(10) < 3 {
		switch s.rng.IntN(7) {
		case 0:
			f.Kind = "api-down"
			s.stack.TakeAPIDown(d)
		case 1:
			f.Kind = "api-hang"
			s.stack.API.HangFor(d)
		default:
			status := []int{429, 500, 502, 503, 504}[s.rng.IntN(5)]
			f.Kind = fmt.Sprintf("api-%d", status)
			// Every request until the fault is cleared.
			s.stack.API.FailNext(1_000_000, status)
		}
		return f
	}
	op := s3Ops[s.rng.IntN(len(s3Ops))]
	sf := wsstack.S3Fault{Ops: []wsstack.Op{op}}
	switch s.rng.IntN(4) {
	case 0:
		sf.Status = http.StatusServiceUnavailable
	case 1:
		sf.Status = http.StatusInternalServerError
	case 2:
		sf.Stall = time.Duration(1+s.rng.IntN(10)) * time.Second
		f.Stall = sf.Stall
	case 3:
		sf.Reset = true
	}
	f.Kind = "s3-" + s3FaultName(sf) + " " + string(op)
	s.stack.S3.Inject(sf)
	return f
}

func s3FaultName(f wsstack.S3Fault) string {
	switch {
	case f.Reset:
		return "reset"
	case f.Stall > 0:
		return "stall"
	}
	return fmt.Sprint(f.Status)
}

// history is every fault injected so far.
func (s *faultSchedule) history() []fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fault(nil), s.faults...)
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
