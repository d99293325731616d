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
	if queued, _ := w.Add("a", "a", true); queued {
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
	if queued, failed := w.Add("a", "a", true); !queued || !failed {
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
	w.Add("failed", "failed", true)
	w.Add("open", "open", false)
	w.Add("removed", "removed", true)
	w.Remove("removed")
	if got, want := w.Items(), map[string]bool{"failed": true, "open": false}; !maps.Equal(got, want) {
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
	w.Add("late", "late", false)
	left := w.Close(ctx)
	if !slices.Equal(left, []string{"open"}) || !st.saved["late"] {
		t.Errorf("Close left %v (want [open]); saved %v", left, st.saved)
	}
	w.manual = false
	w.Add("after-close", "after-close", false)
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
	w.Add("x", "x", true)
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
		"removed-then-added": func() { w.Remove("f"); w.Add("f", "f", true) },
		"added-again":        func() { w.Add("f", "f", true) },
	}
	for name, during := range requeue {
		t.Run(name, func(t *testing.T) {
			w = NewWriteBack(func(context.Context, string, bool) error { during(); return nil }, time.Second, clock.now)
			w.manual = true
			w.Add("f", "f", true)
			clock.advance(time.Second)
			w.RunDue(context.Background())
			if w.Len() != 1 {
				t.Errorf("a file queued again while its save ran was dropped from the queue")
			}
		})
	}
}

func TestWriteBackKeys(t *testing.T) {
	// Items are queued by the path they are saved under: a rename moves
	// the path of a file, or of everything under a directory, and what
	// the new path held leaves the queue; a lookup of a name finds what
	// is queued under it, a listing what is queued in its directory.
	w := NewWriteBack(func(context.Context, string, bool) error { return nil }, time.Second, nil)
	w.manual = true
	for key, item := range map[string]string{
		"top": "T", "d/a": "A", "d/e/b": "B", "d2/c": "C", "dx": "X", "new/a": "N",
	} {
		w.Add(key, item, false)
	}
	w.Move("d", "new")
	w.Move("top", "d2/top")
	want := map[string]string{
		"d2/top": "T", "new/a": "A", "new/e/b": "B", "d2/c": "C", "dx": "X",
	}
	for key, item := range want {
		if got, ok := w.At(key); !ok || got != item {
			t.Errorf("At(%q) = %q, %v; want %q", key, got, ok, item)
		}
		if got, ok := w.Key(item); !ok || got != key {
			t.Errorf("Key(%q) = %q, %v; want %q", item, got, ok, key)
		}
	}
	for _, gone := range []string{"top", "d/a", "d/e/b"} {
		if item, ok := w.At(gone); ok {
			t.Errorf("At(%q) = %q after the rename; want nothing", gone, item)
		}
	}
	if _, ok := w.Key("N"); ok || w.Len() != len(want) {
		t.Errorf("the item the rename replaced is still queued (%d queued)", w.Len())
	}
	if got, want := w.In("d2"), map[string]string{"top": "T", "c": "C"}; !maps.Equal(got, want) {
		t.Errorf(`In("d2") = %v, want %v`, got, want)
	}
	if got, want := w.In(""), map[string]string{"dx": "X"}; !maps.Equal(got, want) {
		t.Errorf(`In("") = %v, want %v`, got, want)
	}
	under := w.Under("new")
	slices.Sort(under)
	if want := []string{"A", "B"}; !slices.Equal(under, want) {
		t.Errorf(`Under("new") = %v, want %v`, under, want)
	}

	// A new item under a queued key displaces the old one; queueing an
	// item again under another key moves it there.
	w.Add("dx", "Z", true)
	if _, ok := w.Key("X"); ok {
		t.Error("an item displaced from its key is still queued")
	}
	if got, _ := w.At("dx"); got != "Z" {
		t.Errorf(`At("dx") = %q, want Z`, got)
	}
	if queued, failed := w.Add("moved", "Z", false); !queued || !failed {
		t.Errorf("Add of a queued item = %v, %v; want true, true (its state kept)", queued, failed)
	}
	if _, ok := w.At("dx"); ok {
		t.Error("an item queued again under a new key is still under its old one")
	}
	w.Remove("Z")
	if _, ok := w.At("moved"); ok {
		t.Error("a removed item is still found by its key")
	}
}
