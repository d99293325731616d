package vfs

import (
	"context"
	"sync"
	"time"

	"mount-ws/bucket"
)

// Partial is a listing of a directory being read page by page, by the one
// lister of the directory (StartListing). Pages come in key order, so a
// lookup of a name that a page already went past is answered before the
// last page arrives (WaitListed): programs that open many files of a
// directory at once wait for the page that holds their file, not for the
// whole listing (on the local server every page costs as much as reading
// the whole directory).
type Partial struct {
	c       *DirCache
	prefix  string // of the directory's keys, "" or ending in "/"
	gen     uint64 // the cache's generation when the listing started
	started time.Time
	ended   chan struct{} // closed by End

	mu      sync.Mutex
	entries map[string]Entry // the pages so far; guarded by mu
	upTo    string           // every key up to this one has been read; guarded by mu
	gone    map[string]bool  // names removed here since the listing started; guarded by mu
	done    bool             // the last page arrived, or the listing ended; guarded by mu
	changed chan struct{}    // closed, and replaced, at every page and at the end
	// seededAt is when the seed that held the whole directory was read
	// (Seed): the listing's time. Guarded by mu.
	seededAt time.Time
}

// StartListing makes the caller the one lister of the directory, whose
// keys start with prefix: it returns mine, to feed with Page and finish
// with Install or End. If a listing is under way already, it returns that
// one instead, to wait for (Ended, WaitListed).
func (c *DirCache) StartListing(prefix string) (mine, under *Partial) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.partial != nil {
		return nil, c.partial
	}
	c.partial = &Partial{c: c, prefix: prefix, gen: c.gen, started: c.now(), ended: make(chan struct{}),
		entries: make(map[string]Entry), changed: make(chan struct{})}
	return c.partial, nil
}

// Ended is closed when the listing is over, installed or not.
func (p *Partial) Ended() <-chan struct{} { return p.ended }

// Page adds a page to the listing's entries (AddListing), where lookups
// waiting in WaitListed see it.
func (p *Partial) Page(page bucket.Page, skip SkipFunc) {
	last := ""
	for _, o := range page.Objects {
		last = max(last, o.Key)
	}
	for _, pre := range page.Prefixes {
		last = max(last, pre)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	AddListing(p.entries, p.prefix, page, skip)
	if page.Next == "" {
		p.done = true
	}
	p.upTo = max(p.upTo, last)
	close(p.changed)
	p.changed = make(chan struct{})
}

// Seed adds the start of the listing read at at from a lookup's page
// (see vfs.Seed). It reports whether that was the whole directory: then
// the listing is as old as that page.
func (p *Partial) Seed(s Seed, at time.Time, skip SkipFunc) (whole bool) {
	p.Page(s.Page, skip)
	if s.After != "" {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seededAt = at
	return true
}

// Entries ends the pages and hands the lister the entries read, to add
// what the mount knows before Install. Lookups waiting for names the
// pages did not cover go on without the listing.
func (p *Partial) Entries() map[string]Entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	entries := p.entries
	for name := range p.gone {
		delete(entries, name) // a page may have been read before the removal
	}
	p.done, p.entries = true, nil
	close(p.changed)
	p.changed = make(chan struct{})
	return entries
}

// Install makes entries, read in took, the directory's listing, unless the
// cache was forgotten since the listing started (see DirCache.Install),
// and ends the listing.
func (p *Partial) Install(entries map[string]Entry, took time.Duration) bool {
	defer p.End()
	p.mu.Lock()
	at := p.seededAt
	p.mu.Unlock()
	return p.c.install(entries, took, p.gen, at)
}

// End ends the listing without installing it (an error, or too many
// pages); after Install it does nothing.
func (p *Partial) End() {
	p.Entries()
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if p.c.partial == p {
		p.c.partial = nil
		close(p.ended)
	}
}

// WaitListed answers a lookup of name from the listing p, once a page
// covers the name (both as a file and as a directory). It answers only
// for names found, and only while the listing stands: ok is false when
// the listing ended first, the name is not in it, the cache was forgotten
// since it started (a rename), the name was removed here since, or ctx
// ended. The caller then goes the usual way.
func (p *Partial) WaitListed(ctx context.Context, name string) (e Entry, ok bool) {
	// Both the file's key and the directory's prefix sort before this.
	needed := p.prefix + name + "/"
	for {
		p.mu.Lock()
		if p.done || p.upTo >= needed {
			e, found := p.entries[name]
			found = found && !p.gone[name]
			p.mu.Unlock()
			if !found {
				return Entry{}, false
			}
			return p.c.stillStands(p, name, e)
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Entry{}, false
		}
	}
}

// removed records whether name was removed (or found missing) through
// this mount while the listing is read, which a page read before cannot
// know; a name created again is not removed any more.
func (p *Partial) removed(name string, gone bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !gone {
		delete(p.gone, name)
		return
	}
	if p.gone == nil {
		p.gone = make(map[string]bool)
	}
	p.gone[name] = true
}

// stillStands checks an entry found in p against what happened to the
// cache since p started, and adds what the last listing knew of the same
// version (metadata read before).
func (c *DirCache) stillStands(p *Partial, name string, e Entry) (Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != p.gen {
		return Entry{}, false
	}
	if at, ok := c.missing[name]; ok && !at.Before(p.started) {
		return Entry{}, false
	}
	if old, ok := c.listing.get(name); ok {
		e = KeepKnownMeta(old, e)
	}
	return e, true
}

// ListStore is what reading a directory's listing needs of the storage.
type ListStore interface {
	// List returns one page of the objects and sub-prefixes directly in
	// dir.
	List(ctx context.Context, dir, continuation string) (bucket.Page, error)
	// ListAfter is List's first page from the first key after after.
	ListAfter(ctx context.Context, dir, after string) (bucket.Page, error)
}

// Read reads the listing's pages from s, at most maxPages (0: all),
// starting from what a lookup's page showed of the directory if it is
// younger than ttl (a Seed; a change here since would have dropped it).
// complete is false when maxPages was not enough: the directory is then
// marked too big to list for lookups (MarkTooBig). Lookups waiting on the
// listing are answered page by page meanwhile. The caller still installs
// the entries, or ends the listing.
func (p *Partial) Read(ctx context.Context, s ListStore, maxPages int, ttl time.Duration, skip SkipFunc) (complete bool, err error) {
	token, after, pages := "", "", 0
	if seed, at, ok := p.c.TakeSeed(ttl); ok {
		pages++
		if !p.Seed(seed, at, skip) {
			after = seed.After // else it was the whole directory
		}
	}
	for pages == 0 || after != "" || token != "" {
		pages++
		var page bucket.Page
		var err error
		if after != "" {
			page, err = s.ListAfter(ctx, p.prefix, after)
			after = ""
		} else {
			page, err = s.List(ctx, p.prefix, token)
		}
		if err != nil {
			return false, err
		}
		p.Page(page, skip)
		if page.Next == "" {
			break
		}
		if maxPages > 0 && pages >= maxPages {
			p.c.MarkTooBig()
			return false, nil
		}
		token = page.Next
	}
	return true, nil
}
