package vfs

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// store is a fake upload target: it fails while down, and records every
// attempt by item.
type store struct {
	mu       sync.Mutex
	down     bool
	busy     map[string]bool // still open for writing: ErrNotNow
	attempts []string
	saved    map[string]bool
}

func (s *store) save(_ context.Context, item string, _ bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy[item] {
		return ErrNotNow
	}
	s.attempts = append(s.attempts, item)
	if s.down {
		return errors.New("storage down")
	}
	if s.saved == nil {
		s.saved = make(map[string]bool)
	}
	s.saved[item] = true
	return nil
}

func (s *store) tries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attempts)
}

func TestWriteBackBacksOff(t *testing.T) {
	const interval = 10 * time.Second
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	st := &store{down: true}
	w := NewWriteBack(st.save, interval, clock.now)
	w.manual = true // no loop: the test runs the passes
	defer w.Close(context.Background())
	ctx := context.Background()
	if queued, _ := w.Add("a", true); queued {
		t.Fatal("a new item reported as queued already")
	}
	// Attempts while the storage is down: at 1, 3, 7, 15, then every 8
	// intervals (the cap), never more often.
	var at []int
	for tick := 0; tick <= 40; tick++ {
		before := st.tries()
		w.RunDue(ctx)
		if st.tries() > before {
			at = append(at, tick)
		}
		clock.advance(interval)
	}
	if want := []int{1, 3, 7, 15, 23, 31, 39}; !slices.Equal(at, want) {
		t.Errorf("attempts at intervals %v, want %v", at, want)
	}
	// Queued again by a failed close: the backoff is kept.
	if queued, failed := w.Add("a", true); !queued || !failed {
		t.Errorf("Add of a queued failed item = %v, %v; want true, true", queued, failed)
	}
	st.mu.Lock()
	st.down = false
	st.mu.Unlock()
	for range MaxBackoff {
		w.RunDue(ctx)
		clock.advance(interval)
	}
	if w.Len() != 0 || !st.saved["a"] {
		t.Errorf("storage back for %d intervals: %d queued, saved %v", MaxBackoff, w.Len(), st.saved)
	}
}

func TestWriteBackItems(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	st := &store{busy: map[string]bool{"open": true}}
	w := NewWriteBack(st.save, time.Second, clock.now)
	w.manual = true // no loop: the test runs the passes
	ctx := context.Background()
	w.Add("failed", true)
	w.Add("open", false)
	w.Add("removed", true)
	w.Add("old", true)
	w.Remove("removed")
	if !w.Replace("old", "fresh", true) || w.Replace("gone", "other", true) {
		t.Error("Replace reported the wrong items as queued")
	}
	if got, want := w.Items(), map[string]bool{"failed": true, "open": false, "fresh": true}; !maps.Equal(got, want) {
		t.Errorf("Items() = %v, want %v", got, want)
	}
	w.RunDue(ctx) // nothing due before one interval
	if st.tries() != 0 {
		t.Errorf("%d attempts before the first interval passed", st.tries())
	}
	clock.advance(time.Second)
	w.RunDue(ctx)
	if got := w.Items(); !maps.Equal(got, map[string]bool{"open": false}) {
		t.Errorf("after a pass: %v queued, want only the file still open for writing", got)
	}
	// Close makes a last pass whatever the delays, and returns what is
	// left; no loop starts after it.
	w.Add("late", false)
	left := w.Close(ctx)
	if !slices.Equal(left, []string{"open"}) || !st.saved["late"] {
		t.Errorf("Close left %v (want [open]); saved %v", left, st.saved)
	}
	w.manual = false
	w.Add("after-close", false)
	w.mu.Lock()
	started := w.stop != nil
	w.mu.Unlock()
	if started {
		t.Error("an Add after Close started the background loop")
	}
}

func TestWriteBackLoop(t *testing.T) {
	// The loop, on the real clock: an item queued while the storage is up
	// is saved within a few intervals, and Close waits for the loop.
	st := &store{}
	w := NewWriteBack(st.save, 20*time.Millisecond, nil)
	w.Add("x", true)
	deadline := time.Now().Add(10 * time.Second)
	for w.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if left := w.Close(context.Background()); w.Len() != 0 || len(left) != 0 {
		t.Fatalf("the loop did not save the item: %d queued", w.Len())
	}
}

func TestWriteBackKeepsWhatIsQueuedDuringASave(t *testing.T) {
	// The background save succeeds and takes the file off the queue
	// (as fs's save does); before it returns, a close of the file fails
	// and queues it again. That entry must stay.
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	var w *WriteBack[string]
	requeue := map[string]func(){
		"removed-then-added": func() { w.Remove("f"); w.Add("f", true) },
		"added-again":        func() { w.Add("f", true) },
	}
	for name, during := range requeue {
		t.Run(name, func(t *testing.T) {
			w = NewWriteBack(func(context.Context, string, bool) error { during(); return nil }, time.Second, clock.now)
			w.manual = true
			w.Add("f", true)
			clock.advance(time.Second)
			w.RunDue(context.Background())
			if w.Len() != 1 {
				t.Errorf("a file queued again while its save ran was dropped from the queue")
			}
		})
	}
}
