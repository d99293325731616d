package vfs

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
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

// Orphans and renames are why the queue is keyed by path: the kernel may
// forget a file whose data is queued (nothing holds it open), and its node
// goes with it, but the data still belongs to its name. The queue keeps
// that name (Key), moves it with a rename (Move), and answers for it until
// a new node stands for the name (At, In, Under).

// WriteBack holds the items whose data is not in the bucket yet (an
// upload failed, or was still running when the last handle went) and
// saves them again in the background: the first time one interval after
// it was queued, then after each failure twice as long as before, up to
// MaxBackoff intervals, so that a thousand files cannot keep a failing
// bucket busy. Nothing is ever dropped here: an item leaves the queue
// when it is saved (its save returns nil) or when its owner removes it.
//
// Each item is queued under one key, the path it is to be saved under,
// and each key holds one item. Items are compared with ==; T is a pointer
// to the owner's file type.
type WriteBack[T comparable] struct {
	save     SaveFunc[T]
	interval time.Duration
	now      Clock

	mu      sync.Mutex
	items   map[T]*retry // guarded by mu
	byKey   map[string]T // the same items by key; guarded by mu
	stop    chan struct{}
	stopped chan struct{}
	closed  bool // guarded by mu
	manual  bool // no background loop: tests call RunDue
}

// retry is the state of one queued item.
type retry struct {
	key    string        // where the item is to be saved
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
	return &WriteBack[T]{save: save, interval: interval, now: now, items: make(map[T]*retry), byKey: make(map[string]T)}
}

// Add queues item, to be saved under key; failed says an upload of it
// failed. It reports whether the item was queued already, and whether it
// was known to have failed. Queueing again keeps the item's backoff (and
// takes the key given). Another item queued under key leaves the queue:
// the name stands for item now (its owner drops the other first). The first Add starts the background
// loop (unless the queue is closed).
func (w *WriteBack[T]) Add(key string, item T, failed bool) (queued, wasFailed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if other, ok := w.byKey[key]; ok && other != item {
		delete(w.items, other)
	}
	if r, ok := w.items[item]; ok {
		wasFailed = r.failed
		r.failed = r.failed || failed
		r.adds++
		w.rekeyLocked(r, item, key)
		return true, wasFailed
	}
	w.items[item] = &retry{key: key, adds: 1, failed: failed, delay: 2 * w.interval, due: w.now().Add(w.interval)}
	w.byKey[key] = item
	if w.stop == nil && !w.closed && !w.manual {
		w.stop, w.stopped = make(chan struct{}), make(chan struct{})
		go w.loop(w.stop, w.stopped)
	}
	return false, false
}

// rekeyLocked files the queued item, whose state is r, under key.
func (w *WriteBack[T]) rekeyLocked(r *retry, item T, key string) {
	if r.key == key {
		return
	}
	if w.byKey[r.key] == item {
		delete(w.byKey, r.key)
	}
	r.key = key
	w.byKey[key] = item
}

// Remove takes item off the queue: it was saved, or deleted.
func (w *WriteBack[T]) Remove(item T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.removeLocked(item)
}

func (w *WriteBack[T]) removeLocked(item T) {
	r, ok := w.items[item]
	if !ok {
		return
	}
	delete(w.items, item)
	if w.byKey[r.key] == item {
		delete(w.byKey, r.key)
	}
}

// Key returns the key item is queued under.
func (w *WriteBack[T]) Key(item T) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.items[item]
	if !ok {
		return "", false
	}
	return r.key, true
}

// At returns the item queued under key.
func (w *WriteBack[T]) At(key string) (T, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	item, ok := w.byKey[key]
	return item, ok
}

// In returns the items queued directly in the directory dir ("" for the
// root), by name.
func (w *WriteBack[T]) In(dir string) map[string]T {
	w.mu.Lock()
	defer w.mu.Unlock()
	prefix := ListingPrefix(dir)
	var out map[string]T
	for key, item := range w.byKey {
		name, ok := strings.CutPrefix(key, prefix)
		if !ok || name == "" || strings.Contains(name, "/") {
			continue
		}
		if out == nil {
			out = make(map[string]T)
		}
		out[name] = item
	}
	return out
}

// Under returns the items queued under the directory dir, at any depth.
func (w *WriteBack[T]) Under(dir string) []T {
	w.mu.Lock()
	defer w.mu.Unlock()
	prefix := ListingPrefix(dir)
	var out []T
	for key, item := range w.byKey {
		if strings.HasPrefix(key, prefix) {
			out = append(out, item)
		}
	}
	return out
}

// Move files what is queued under from, the key itself and any below it
// as a directory, under to instead: a rename. What was queued under the
// new keys leaves the queue (the rename replaced it).
func (w *WriteBack[T]) Move(from, to string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	type move struct {
		item T
		r    *retry
		key  string
	}
	var moves []move
	for key, item := range w.byKey {
		if rest, ok := strings.CutPrefix(key, from); ok && (rest == "" || rest[0] == '/') {
			moves = append(moves, move{item, w.items[item], to + rest})
		}
	}
	for _, m := range moves {
		delete(w.byKey, m.r.key)
	}
	for _, m := range moves {
		if other, ok := w.byKey[m.key]; ok && other != m.item {
			w.removeLocked(other)
		}
		m.r.key = m.key
		w.byKey[m.key] = m.item
	}
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
			w.removeLocked(item)
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
