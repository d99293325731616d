package vfs

import "sync"

// Budget counts the bytes held by read-ahead buffers across the mount.
// Prefetching only takes what is free; data a reader is waiting for may
// overdraw it, so a reader never waits on another file's buffers.
type Budget struct {
	mu    sync.Mutex
	limit int64
	used  int64 // guarded by mu
	peak  int64 // guarded by mu
	pool  bufPool
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget { return &Budget{limit: limit} }

// Limit returns the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// take reserves n bytes. Unless must is set it fails when they are not free.
func (b *Budget) take(n int64, must bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !must && b.used+n > b.limit {
		return false
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	return true
}

func (b *Budget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
}

// InUse returns the bytes reserved now and the most ever reserved.
func (b *Budget) InUse() (now, peak int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.peak
}
