package fs

import (
	"container/list"
	"strings"
	"sync"
	"time"

	"mount-ws/vfs"
)

// dirCache is what is known of one directory's entries: its last listing,
// the names found missing, and how lookups went. It is kept by the
// directory's path (dirCaches), not in its node: the kernel forgets nodes
// under memory pressure, and the node made again for the same directory
// must find the listing and the metadata already read, not ask S3 again
// within the TTL (or ever, for metadata of an unchanged object).
type dirCache struct {
	mu       sync.Mutex
	listing  map[string]vfs.Entry // last full listing; guarded by mu
	listedAt time.Time            // when listing was fetched; guarded by mu
	missing  map[string]time.Time // names found missing, and when; guarded by mu
	probes   int                  // lookups sent to S3 since the last listing; guarded by mu
	tooBig   bool                 // more than preloadPages pages: never preloaded; guarded by mu
	// metaAsked records, for files [0] and directories [1], that an
	// entry of the current listing had its metadata read alone: the
	// next one asked for starts a batch (see fillMeta). Guarded by mu.
	metaAsked [2]bool
	// filling serialises batches of metadata HEADs (fillMeta), so a
	// program stat-ing every entry sends one batch, not one per entry.
	filling sync.Mutex
	// listing1 lets one listing of the directory run at a time: readers
	// opening many files at once would otherwise all start the same one.
	listing1 sync.Mutex

	// Bookkeeping of dirCaches, guarded by its mu.
	key     string
	holders int           // directory nodes using this cache
	idle    *list.Element // in dirCaches.idle while no node holds it
	size    int           // entries counted in dirCaches.idleEntries
}

// forget drops the listing and the names found missing, so the directory
// is listed again.
func (c *dirCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listing, c.missing = nil, nil
}

// dirCaches holds every directory's cache by path. A cache that no node
// holds any more (the kernel forgot the directory) is kept too, least
// recently released dropped first once they hold more than maxIdle
// entries in all: that bounds the memory they take (an entry is about 300
// bytes with its name and ETag, so 1 << 17 entries are about 40 MiB),
// beside the listings of the directories the kernel knows.
type dirCaches struct {
	mu          sync.Mutex
	byKey       map[string]*dirCache
	idle        list.List // of *dirCache, least recently released first
	idleEntries int
	maxIdle     int
}

const maxIdleCacheEntries = 1 << 17

func newDirCaches(maxIdle int) *dirCaches {
	return &dirCaches{byKey: make(map[string]*dirCache), maxIdle: maxIdle}
}

// hold returns the cache of the directory key, for a node made for it.
func (cs *dirCaches) hold(key string) *dirCache {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.byKey[key]
	if c == nil {
		c = &dirCache{key: key}
		cs.byKey[key] = c
	}
	c.holders++
	cs.unidleLocked(c)
	return c
}

// release is called once for each hold, when the node is forgotten.
func (cs *dirCaches) release(c *dirCache) {
	c.mu.Lock()
	size := len(c.listing) + len(c.missing) + 1
	c.mu.Unlock()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c.holders--
	if c.holders > 0 || cs.byKey[c.key] != c {
		return
	}
	c.size = size
	c.idle = cs.idle.PushBack(c)
	cs.idleEntries += size
	for cs.idleEntries > cs.maxIdle {
		old := cs.idle.Front().Value.(*dirCache)
		cs.unidleLocked(old)
		delete(cs.byKey, old.key)
	}
}

func (cs *dirCaches) unidleLocked(c *dirCache) {
	if c.idle != nil {
		cs.idle.Remove(c.idle)
		cs.idleEntries -= c.size
		c.idle, c.size = nil, 0
	}
}

// under calls fn for the cache of key and of every directory below it.
// cs.mu must be held.
func (cs *dirCaches) underLocked(key string, fn func(*dirCache)) {
	for k, c := range cs.byKey {
		if k == key || strings.HasPrefix(k, key+"/") {
			fn(c)
		}
	}
}

// forget makes the directory key and every directory below it be listed
// again: S3 may hold more than their listings showed (a directory
// rename copies what S3 holds).
func (cs *dirCaches) forget(key string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.underLocked(key, (*dirCache).forget)
}

// drop forgets the directory key and everything below it: it was removed.
// A node still open on it keeps its cache, which no new node will share.
func (cs *dirCaches) drop(key string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.dropLocked(key)
}

func (cs *dirCaches) dropLocked(key string) {
	cs.underLocked(key, func(c *dirCache) {
		cs.unidleLocked(c)
		delete(cs.byKey, c.key)
	})
}

// move gives the caches of the directory from and everything below it
// their paths under to, after a rename; whatever to held is dropped.
func (cs *dirCaches) move(from, to string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.dropLocked(to)
	var moved []*dirCache
	cs.underLocked(from, func(c *dirCache) {
		delete(cs.byKey, c.key)
		c.key = to + strings.TrimPrefix(c.key, from)
		moved = append(moved, c)
	})
	for _, c := range moved {
		cs.byKey[c.key] = c
	}
}
