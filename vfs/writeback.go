package vfs

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"
)

// ErrNotNow is what a WriteBack's save returns for an item that cannot be
// saved at this moment for a reason that is not a failure (a file still
// open for writing: its close saves it). The item is tried again at the
// next pass, with no backoff.
var ErrNotNow = errors.New("not now")

// MaxBackoff bounds the delay between two background attempts of one item,
// as a multiple of the WriteBack's interval.
const MaxBackoff = 8

// WriteBack holds the items whose data is not in the bucket yet (an
// upload failed, or was still running when the last handle went) and
// saves them again in the background: the first time one interval after
// it was queued, then after each failure twice as long as before, up to
// MaxBackoff intervals, so that a thousand files cannot keep a failing
// bucket busy. Nothing is ever dropped here: an item leaves the queue
// when it is saved (its save returns nil) or when its owner removes it.
//
// Items are compared with ==; T is a pointer to the owner's file type.
type WriteBack[T comparable] struct {
	save     SaveFunc[T]
	interval time.Duration
	now      Clock

	mu      sync.Mutex
	items   map[T]*retry // guarded by mu
	stop    chan struct{}
	stopped chan struct{}
	closed  bool // guarded by mu
	manual  bool // no background loop: tests call RunDue
}

// retry is the state of one queued item.
type retry struct {
	adds   int           // times queued: a save that began before the last Add does not take the item off
	failed bool          // an upload of it failed (close or fsync said EIO)
	delay  time.Duration // before the next attempt after this one fails
	due    time.Time     // the next attempt
}

// SaveFunc saves one queued item; failed says an upload of it failed
// before. nil means saved (the item leaves the queue); ErrNotNow, not
// tried; any other error, failed again.
type SaveFunc[T comparable] func(ctx context.Context, item T, failed bool) error

// NewWriteBack returns a queue that saves its items with save, the first
// time interval after they are queued. now is the clock (nil: time.Now).
func NewWriteBack[T comparable](save SaveFunc[T], interval time.Duration, now Clock) *WriteBack[T] {
	if now == nil {
		now = time.Now
	}
	return &WriteBack[T]{save: save, interval: interval, now: now, items: make(map[T]*retry)}
}

// Add queues item; failed says an upload of it failed. It reports whether
// the item was queued already, and whether it was known to have failed.
// Queueing again keeps the item's backoff. The first Add starts the
// background loop (unless the queue is closed).
func (w *WriteBack[T]) Add(item T, failed bool) (queued, wasFailed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if r, ok := w.items[item]; ok {
		wasFailed = r.failed
		r.failed = r.failed || failed
		r.adds++
		return true, wasFailed
	}
	w.items[item] = &retry{adds: 1, failed: failed, delay: 2 * w.interval, due: w.now().Add(w.interval)}
	if w.stop == nil && !w.closed && !w.manual {
		w.stop, w.stopped = make(chan struct{}), make(chan struct{})
		go w.loop(w.stop, w.stopped)
	}
	return false, false
}

// Remove takes item off the queue: it was saved, or deleted.
func (w *WriteBack[T]) Remove(item T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.items, item)
}

// Replace puts fresh in old's place, with old's state, if old is queued
// and keep is true; old leaves the queue either way. It reports whether
// old was queued.
func (w *WriteBack[T]) Replace(old, fresh T, keep bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.items[old]
	delete(w.items, old)
	if ok && keep {
		w.items[fresh] = r
	}
	return ok
}

// Len returns the number of queued items.
func (w *WriteBack[T]) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.items)
}

// Items returns the queued items, each with whether an upload of it
// failed: a copy, to go over without holding the queue.
func (w *WriteBack[T]) Items() map[T]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[T]bool, len(w.items))
	for item, r := range w.items {
		out[item] = r.failed
	}
	return out
}

// RunDue tries every item whose attempt is due, one at a time. A failed
// attempt doubles the item's delay.
func (w *WriteBack[T]) RunDue(ctx context.Context) { w.run(ctx, false) }

// Close stops the background loop and waits for it, tries every item once
// more whatever its delay, and returns those still unsaved. Add queues
// but starts no loop after Close.
func (w *WriteBack[T]) Close(ctx context.Context) []T {
	w.mu.Lock()
	stop, stopped := w.stop, w.stopped
	w.stop, w.closed = nil, true
	w.mu.Unlock()
	if stop != nil {
		close(stop)
		<-stopped
	}
	w.run(ctx, true)
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Collect(maps.Keys(w.items))
}

func (w *WriteBack[T]) run(ctx context.Context, all bool) {
	now := w.now()
	type seen struct {
		r    *retry
		adds int
	}
	w.mu.Lock()
	due := make(map[T]seen)
	for item, r := range w.items {
		if all || !r.due.After(now) {
			due[item] = seen{r, r.adds}
		}
	}
	w.mu.Unlock()
	for item, was := range due {
		w.mu.Lock()
		failed := was.r.failed
		w.mu.Unlock()
		err := w.save(ctx, item, failed)
		if errors.Is(err, ErrNotNow) {
			continue
		}
		w.mu.Lock()
		switch r, ok := w.items[item]; {
		case !ok || r != was.r:
			// Removed while being saved, or removed and queued anew
			// (saved, then a failed close): the new entry stands.
		case err != nil:
			r.due = w.now().Add(r.delay)
			r.delay = min(2*r.delay, MaxBackoff*w.interval)
		case r.adds == was.adds:
			delete(w.items, item)
			// Else queued again while being saved: that data may not be
			// in what was saved.
		}
		w.mu.Unlock()
	}
}

func (w *WriteBack[T]) loop(stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	// Ticks at a quarter of the interval, so that an item is tried soon
	// after it is due rather than up to a whole interval late.
	t := time.NewTicker(max(w.interval/4, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			w.RunDue(context.Background())
		}
	}
}
