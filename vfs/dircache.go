package vfs

import (
	"container/list"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Clock tells the time. The core takes it as an option, so that a test
// can move time on without sleeping.
type Clock func() time.Time

// DirCache is what is known of one directory's entries: its last listing,
// the names found missing, and how lookups went. It is kept by the
// directory's path (DirCaches), not in its node: the kernel forgets nodes
// under memory pressure, and the node made again for the same directory
// must find the listing and the metadata already read, not ask S3 again
// within the TTL (or ever, for metadata of an unchanged object).
type DirCache struct {
	now Clock

	mu       sync.Mutex
	listing  *listing             // last full listing; guarded by mu
	listedAt time.Time            // when listing was fetched; guarded by mu
	took     time.Duration        // how long that took; guarded by mu
	gen      uint64               // counts forgets; guarded by mu
	missing  map[string]time.Time // names found missing, and when; guarded by mu
	probes   int                  // lookups sent to S3 since the last listing; guarded by mu
	tooBig   bool                 // more than preloadPages pages: never preloaded; guarded by mu
	// metaAsked records, for files [0] and directories [1], that an
	// entry of the current listing had its metadata read alone: the
	// next one asked for starts a batch (see MetaWanted). Guarded by mu.
	metaAsked [2]bool
	// partial is the listing being read now, if any: one at a time, as
	// readers opening many files at once would otherwise all start the
	// same one (StartListing). Guarded by mu.
	partial *Partial
	// filling serialises batches of metadata reads (LockFilling), so a
	// program stat-ing every entry sends one batch, not one per entry.
	filling sync.Mutex
	// learned are entries seen in a page of keys read for a lookup
	// elsewhere (DirCaches.Learn), not in a listing of this directory,
	// with when. Guarded by mu.
	learned map[string]learnedEntry
	// seed is the start of the next listing, from the same page (see
	// Seed), and when it was read. Guarded by mu.
	seed   *Seed
	seedAt time.Time
	// changes counts, mount-wide, the changes made through the mount
	// (DirCaches.Changes).
	changes *atomic.Uint64

	// Bookkeeping of DirCaches, guarded by its mu.
	key     string
	holders int           // directory nodes using this cache
	idle    *list.Element // in DirCaches.idle while no node holds it
	size    int           // entries counted in DirCaches.idleEntries
}

// forget drops the listing and the names found missing, so the directory
// is listed again.
func (c *DirCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listing, c.missing, c.learned, c.seed = nil, nil, nil, nil
	c.gen++
	c.changes.Add(1)
}

type learnedEntry struct {
	e  Entry
	at time.Time
}

// Generation tells Install which listings were started before the cache
// was last forgotten: take it before reading a listing.
func (c *DirCache) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// DirCaches holds every directory's cache by path. A cache that no node
// holds any more (the kernel forgot the directory) is kept too, least
// recently released dropped first once they hold more than maxIdle
// entries in all: that bounds the memory they take (an entry is about 180
// bytes with its name and ETag, so 1 << 17 entries are about 23 MiB),
// beside the listings of the directories the kernel knows.
type DirCaches struct {
	now         Clock
	changes     atomic.Uint64 // see Changes
	mu          sync.Mutex
	byKey       map[string]*DirCache
	idle        list.List // of *DirCache, least recently released first
	idleEntries int
	maxIdle     int
}

// MaxIdleCacheEntries bounds the entries of the caches no node holds.
const MaxIdleCacheEntries = 1 << 17

// NewDirCaches returns the caches of a mount, which keeps at most maxIdle
// entries in the caches no node holds, and tells the time with now (nil:
// time.Now).
func NewDirCaches(maxIdle int, now Clock) *DirCaches {
	if now == nil {
		now = time.Now
	}
	return &DirCaches{byKey: make(map[string]*DirCache), maxIdle: maxIdle, now: now}
}

// Hold returns the cache of the directory key, for a node made for it.
func (cs *DirCaches) Hold(key string) *DirCache {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.getLocked(key)
	c.holders++
	cs.unidleLocked(c)
	return c
}

// getLocked returns the cache of key, made if there is none. cs.mu must
// be held.
func (cs *DirCaches) getLocked(key string) *DirCache {
	c := cs.byKey[key]
	if c == nil {
		c = &DirCache{key: key, now: cs.now, changes: &cs.changes}
		cs.byKey[key] = c
	}
	return c
}

// Release is called once for each Hold, when the node is forgotten.
func (cs *DirCaches) Release(c *DirCache) {
	size := c.entries()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c.holders--
	if c.holders > 0 || cs.byKey[c.key] != c {
		return
	}
	cs.idleLocked(c, size)
}

// entries is what the cache holds, as counted against the idle bound.
func (c *DirCache) entries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.listing.len() + len(c.missing) + len(c.learned) + 1
	if c.seed != nil {
		n += len(c.seed.Page.Objects) + len(c.seed.Page.Prefixes)
	}
	return n
}

// idleLocked puts c, which no node holds, last in the idle list, counted
// as size entries, and drops the least recently used caches beyond the
// bound. cs.mu must be held.
func (cs *DirCaches) idleLocked(c *DirCache, size int) {
	cs.unidleLocked(c)
	c.size = size
	c.idle = cs.idle.PushBack(c)
	cs.idleEntries += size
	for cs.idleEntries > cs.maxIdle {
		old := cs.idle.Front().Value.(*DirCache)
		cs.unidleLocked(old)
		delete(cs.byKey, old.key)
	}
}

// Set records a change of the entry at key made through this mount (nil:
// removed) in the cache of its directory, held or idle, if there is one:
// a save's new size and ETag reach the listing also when the kernel has
// forgotten the directory's node, or the file's.
func (cs *DirCaches) Set(key string, e *Entry) {
	cs.onDir(key, func(c *DirCache, name string) { c.Set(name, e) })
}

// Remember records what the storage said of the entry at key (see
// DirCache.Remember) in the cache of its directory, held or idle, if
// there is one.
func (cs *DirCaches) Remember(key string, e Entry, found bool) {
	cs.onDir(key, func(c *DirCache, name string) { c.Remember(name, e, found) })
}

// onDir calls fn with the cache of the directory of key, if the mount
// keeps one, and key's name in it. An idle cache is counted again against
// the idle bound afterwards, as Learn does: it may have grown.
func (cs *DirCaches) onDir(key string, fn func(c *DirCache, name string)) {
	dirKey, name := SplitKey(key)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.byKey[dirKey]
	if c == nil {
		return
	}
	fn(c, name)
	if c.holders == 0 {
		cs.idleLocked(c, c.entries())
	}
}

// Changes counts the changes to directories made through the mount:
// creations, removals, renames, names found missing. Take it before a
// request whose answer is to be learned (Learn).
func (cs *DirCaches) Changes() uint64 { return cs.changes.Load() }

// Learn records entries seen in a page of keys (LearnFrom) and the starts
// of listings it gives (SeedsFrom), by directory key, unless the mount
// changed a directory since Changes returned since: the page may then
// predate the change. A directory with a listing keeps it, and a name
// found missing or removed stays so.
func (cs *DirCaches) Learn(learned map[string]map[string]Entry, seeds map[string]Seed, since uint64) {
	if (len(learned) == 0 && len(seeds) == 0) || cs.changes.Load() != since {
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	touched := make(map[*DirCache]bool, len(learned)+len(seeds))
	for key, entries := range learned {
		c := cs.getLocked(key)
		c.learn(entries)
		touched[c] = true
	}
	for key, seed := range seeds {
		c := cs.getLocked(key)
		c.seedWith(seed)
		touched[c] = true
	}
	for c := range touched {
		if c.holders == 0 {
			cs.idleLocked(c, c.entries())
		}
	}
}

// seedWith keeps seed for the next listing, unless there is a listing.
func (c *DirCache) seedWith(seed Seed) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.listing == nil {
		c.seed, c.seedAt = &seed, c.now()
	}
}

// TakeSeed hands the next listing its start (see Seed), if one was read
// within ttl, and when it was read.
func (c *DirCache) TakeSeed(ttl time.Duration) (Seed, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seed, at := c.seed, c.seedAt
	c.seed = nil
	if seed == nil || c.now().Sub(at) >= ttl {
		return Seed{}, time.Time{}, false
	}
	return *seed, at, true
}

// maxLearned bounds the entries a directory learns outside a listing: the
// lookups of many names of a directory too big to list each bring a page.
const maxLearned = 10_000

// learn records entries of the directory seen outside a listing.
func (c *DirCache) learn(entries map[string]Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.listing != nil {
		return // a listing is more complete, and no older
	}
	now := c.now()
	if c.learned == nil {
		c.learned = make(map[string]learnedEntry, len(entries))
	}
	for name, e := range entries {
		if _, gone := c.missing[name]; gone {
			continue
		}
		if _, ok := c.learned[name]; ok || len(c.learned) < maxLearned {
			c.learned[name] = learnedEntry{e, now}
		}
	}
}

// Learned answers for name from what was learned of it within ttl.
func (c *DirCache) Learned(name string, ttl time.Duration) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.learned[name]
	if !ok {
		return Entry{}, false
	}
	if c.now().Sub(l.at) >= ttl {
		delete(c.learned, name)
		return Entry{}, false
	}
	return l.e, true
}

func (cs *DirCaches) unidleLocked(c *DirCache) {
	if c.idle != nil {
		cs.idle.Remove(c.idle)
		cs.idleEntries -= c.size
		c.idle, c.size = nil, 0
	}
}

// underLocked calls fn for the cache of key and of every directory below
// it. cs.mu must be held.
func (cs *DirCaches) underLocked(key string, fn func(*DirCache)) {
	for k, c := range cs.byKey {
		if k == key || strings.HasPrefix(k, key+"/") {
			fn(c)
		}
	}
}

// Forget makes the directory key and every directory below it be listed
// again: S3 may hold more than their listings showed (a directory
// rename copies what S3 holds).
func (cs *DirCaches) Forget(key string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.changes.Add(1)
	cs.underLocked(key, (*DirCache).forget)
}

// Drop forgets the directory key and everything below it: it was removed.
// A node still open on it keeps its cache, which no new node will share.
func (cs *DirCaches) Drop(key string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.dropLocked(key)
}

func (cs *DirCaches) dropLocked(key string) {
	cs.changes.Add(1)
	cs.underLocked(key, func(c *DirCache) {
		cs.unidleLocked(c)
		delete(cs.byKey, c.key)
	})
}

// Move gives the caches of the directory from and everything below it
// their paths under to, after a rename; whatever to held is dropped.
func (cs *DirCaches) Move(from, to string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.dropLocked(to)
	var moved []*DirCache
	cs.underLocked(from, func(c *DirCache) {
		delete(cs.byKey, c.key)
		c.key = to + strings.TrimPrefix(c.key, from)
		moved = append(moved, c)
	})
	for _, c := range moved {
		cs.byKey[c.key] = c
	}
}

// Lookup answers for name from the last listing, if it is younger than
// ttl, or from the names found missing within negTTL. known is false
// when the storage must be asked.
func (c *DirCache) Lookup(name string, ttl, negTTL time.Duration) (e Entry, known, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.freshLocked(ttl) {
		e, found = c.listing.get(name)
		return e, true, found
	}
	if at, ok := c.missing[name]; ok {
		if now.Sub(at) < negTTL {
			return Entry{}, true, false
		}
		delete(c.missing, name)
	}
	return Entry{}, false, false
}

// Remember records what the storage said of name: found, e goes into the
// listing (keeping the metadata it knows of the same version); not
// found, the name is missing from now.
func (c *DirCache) Remember(name string, e Entry, found bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.partial != nil {
		c.partial.removed(name, !found)
	}
	if _, ok := c.learned[name]; ok && found {
		// The answer just given is newer: it answers the next lookup
		// (after the kernel forgot the node) within the TTL.
		c.learned[name] = learnedEntry{e, c.now()}
	} else {
		delete(c.learned, name)
	}
	if found {
		delete(c.missing, name)
		if old, ok := c.listing.get(name); ok {
			e = KeepKnownMeta(old, e)
		}
		c.listing.set(name, e)
		return
	}
	c.changes.Add(1)
	c.seed = nil // it may show the name
	c.missingLocked(name)
}

// Set records a change made through this mount, so that it shows at
// once: e replaces what the listing says of name; nil removes the name.
func (c *DirCache) Set(name string, e *Entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.partial != nil {
		c.partial.removed(name, e == nil)
	}
	c.changes.Add(1)
	delete(c.learned, name)
	c.seed = nil
	if e == nil {
		c.listing.remove(name)
		c.missingLocked(name)
		return
	}
	delete(c.missing, name)
	c.listing.set(name, *e)
}

func (c *DirCache) missingLocked(name string) {
	if c.missing == nil {
		c.missing = make(map[string]time.Time)
	}
	c.missing[name] = c.now()
}

// CountProbe counts a lookup sent to the storage, and reports whether the
// directory should rather be listed: after so many, unless it was found
// too big to list for lookups.
func (c *DirCache) CountProbe(after int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probes++
	return c.probes >= after && !c.tooBig
}

// Fresh reports whether the last listing is younger than ttl.
func (c *DirCache) Fresh(ttl time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.freshLocked(ttl)
}

// freshLocked: a listing lasts ttl from its last page, and at least as
// long as reading it took. A directory too big to list within the TTL
// cannot be known fresher than that anyway, and a walk of it (ls -l of
// 200,000 entries after a listing of 200 pages) must find its entries
// there, not send a request for each one.
// A ttl of 0 caches nothing (--metadata-ttl 0), however long the listing
// took.
func (c *DirCache) freshLocked(ttl time.Duration) bool {
	return c.listing != nil && ttl > 0 && c.now().Sub(c.listedAt) < max(ttl, c.took)
}

// Listed returns what the last listing says of name, however old: for
// the lookup that asked for the listing. listed is false when there is
// no listing (a rename dropped it meanwhile).
func (c *DirCache) Listed(name string) (e Entry, found, listed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found = c.listing.get(name)
	return e, found, c.listing != nil
}

// EachName calls fn with the name and the file type bits of st_mode of
// every entry of the last listing, however old, in no order: what readdir
// needs, without copying the entries (a directory of a million objects
// holds some 180 MB of them). fn runs under the cache's lock, so it must
// only collect. listed is false when there is no listing (a rename
// dropped it meanwhile).
func (c *DirCache) EachName(fn func(name string, kind uint32)) (listed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listing.each(func(name string, e Entry) { fn(name, e.Kind()) })
	return c.listing != nil
}

// Len returns the entries of the last listing, and whether it is younger
// than ttl.
func (c *DirCache) Len(ttl time.Duration) (n int, fresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.listing.len(), c.freshLocked(ttl)
}

// TooBig reports whether the directory was found too big to list for
// lookups; MarkTooBig records it.
func (c *DirCache) TooBig() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tooBig
}

// MarkTooBig: see TooBig.
func (c *DirCache) MarkTooBig() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tooBig = true
}

// Install makes entries, read in took, the listing, fresh from now (a
// listing that took longer than the TTL, a huge directory, must still
// answer the lookups that follow it, ls -l, not leave each to a request
// of its own; see freshLocked).
// Entries keep the metadata the last listing knew of the same object
// versions: it is read once per version. The cache keeps them in an
// array of its own (listing), not the map.
//
// gen is the Generation taken before the listing was read. If the cache
// was forgotten since (a rename of the directory, whose copies the
// listing may predate), entries are dropped and Install reports false.
func (c *DirCache) Install(entries map[string]Entry, took time.Duration, gen uint64) bool {
	return c.install(entries, took, gen, time.Time{})
}

// install is Install of a listing whose last page was read at last (zero:
// now).
func (c *DirCache) install(entries map[string]Entry, took time.Duration, gen uint64, last time.Time) bool {
	l := newListing(entries) // sorted before the lock: a million names take a while
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return false
	}
	if last.IsZero() {
		last = c.now()
	}
	c.took = took
	for i, x := range l.sorted {
		if old, ok := c.listing.get(x.name); ok {
			l.sorted[i].e = KeepKnownMeta(old, x.e)
		}
	}
	c.listing, c.listedAt, c.missing, c.probes = l, last, nil, 0
	c.metaAsked, c.learned, c.seed = [2]bool{}, nil, nil
	return true
}

// InstallEmpty records that the directory was just created here, so it is
// empty; what a cache kept for its path (a directory removed by another
// program) is of no use now.
func (c *DirCache) InstallEmpty() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listing, c.listedAt, c.took, c.missing, c.probes = newListing(nil), c.now(), 0, nil, 0
	c.tooBig, c.metaAsked, c.learned, c.seed = false, [2]bool{}, nil, nil
}

// Subdirs returns the first n subdirectories of the last listing, in name
// order, whose names sort after name. It keeps only n names while it goes
// over the listing: a walk calls it for every subdirectory.
func (c *DirCache) Subdirs(after string, n int) []string {
	if n <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, n)
	c.listing.each(func(name string, e Entry) {
		if !e.Dir || name <= after || len(names) == n && name >= names[n-1] {
			return
		}
		i, _ := slices.BinarySearch(names, name)
		if len(names) == n {
			names = names[:n-1]
		}
		names = slices.Insert(names, i, name)
	})
	return names
}

// WantsMeta reports whether the listing has at most limit entries (limit
// < 0: never), so that its entries get their metadata read.
func (c *DirCache) WantsMeta(limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return limit >= 0 && c.listing != nil && c.listing.len() <= limit
}

// LockFilling serialises the reading of metadata for the listing, so that
// a program stat-ing every entry sends one batch, not one per entry. It
// returns the unlock.
func (c *DirCache) LockFilling() (unlock func()) {
	c.filling.Lock()
	return c.filling.Unlock
}

// MetaWanted returns the entries of the listing, files or (dirs)
// directories, whose metadata to read now that a program asks for name's:
// the first time after a listing, name's alone (a program reading one
// file, cat or pandas, costs one read); after that every one not read yet
// (a program that stats two entries, ls -l, cp -p or rsync, stats them
// all). Hold LockFilling.
func (c *DirCache) MetaWanted(dirs bool, name string) map[string]Entry {
	kind := 0
	if dirs {
		kind = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	todo := make(map[string]Entry)
	if !c.metaAsked[kind] {
		c.metaAsked[kind] = true
		if e, ok := c.listing.get(name); ok && e.Dir == dirs && !e.Meta {
			todo[name] = e
		}
		return todo
	}
	c.listing.each(func(name string, e Entry) {
		if e.Dir == dirs && !e.Meta {
			todo[name] = e
		}
	})
	return todo
}

// MetaResult is what reading an entry's metadata found.
type MetaResult struct {
	Entry Entry
	Gone  bool // deleted since the listing
}

// MetaRead puts what was read into the listing, unless the listing has
// changed the entry meanwhile. An entry gone since the listing leaves it,
// so that it is not asked for again.
func (c *DirCache) MetaRead(found map[string]MetaResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, r := range found {
		cur, ok := c.listing.get(name)
		switch {
		case !ok || cur.Dir != r.Entry.Dir || cur.Meta:
		case r.Gone:
			c.listing.remove(name)
		default:
			c.listing.set(name, r.Entry)
		}
	}
}
