package vfs

import (
	"container/list"
	"sync"
	"time"
)

// Bodies holds what lookups of small files fetched of them (a GET in place
// of a HEAD, bucket.Peek), for the read that usually follows: cat, or a
// program opening the file it just found, then costs no request of its
// own. A body is kept by key and ETag, so a handle of another version
// never reads it, for the metadata TTL (what the lookup answered holds as
// long), and the least recently kept go first past a total size.
type Bodies struct {
	limit int64
	ttl   time.Duration
	now   Clock

	mu   sync.Mutex
	keys map[string]*list.Element // by key; guarded by mu
	lru  list.List                // of *body, oldest first; guarded by mu
	used int64                    // guarded by mu
}

type body struct {
	key, etag string
	data      []byte
	whole     bool // data is all of the object
	at        time.Time
}

// NewBodies returns a store of at most limit bytes, each body kept for ttl.
func NewBodies(limit int64, ttl time.Duration, now Clock) *Bodies {
	if now == nil {
		now = time.Now
	}
	return &Bodies{limit: limit, ttl: ttl, now: now, keys: make(map[string]*list.Element)}
}

// Keep keeps data, the first bytes of version etag of key (whole: all of
// it), replacing what was kept of key.
func (b *Bodies) Keep(key, etag string, data []byte, whole bool) {
	if b == nil || int64(len(data)) > b.limit || b.ttl <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropLocked(key)
	b.keys[key] = b.lru.PushBack(&body{key: key, etag: etag, data: data, whole: whole, at: b.now()})
	b.used += int64(len(data))
	for b.used > b.limit {
		b.dropLocked(b.lru.Front().Value.(*body).key)
	}
}

// Read copies len(p) bytes of version etag of key at off into p from what
// is kept, fewer only where the object ends, and returns how many; ok is
// false when what is kept does not hold them.
func (b *Bodies) Read(key, etag string, p []byte, off int64) (n int, ok bool) {
	if b == nil {
		return 0, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	el, found := b.keys[key]
	if !found {
		return 0, false
	}
	bd := el.Value.(*body)
	if b.now().Sub(bd.at) >= b.ttl {
		b.dropLocked(key)
		return 0, false
	}
	end := off + int64(len(p))
	if bd.etag != etag || off < 0 || (!bd.whole && end > int64(len(bd.data))) {
		return 0, false
	}
	if off >= int64(len(bd.data)) {
		return 0, true
	}
	return copy(p, bd.data[off:]), true
}

func (b *Bodies) dropLocked(key string) {
	if el, ok := b.keys[key]; ok {
		b.used -= int64(len(el.Value.(*body).data))
		b.lru.Remove(el)
		delete(b.keys, key)
	}
}
