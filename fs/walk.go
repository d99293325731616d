package fs

import (
	"context"
	"time"
)

// A program that lists a directory and then one of its subdirectories is
// walking the tree (find, du, os.walk, rsync, cp -r): it will list the
// next subdirectories too. Listing those ahead, a few at once, hides the
// round trip of one LIST per directory that a walk otherwise waits for in
// turn.
const (
	walkAhead     = 8                // subdirectories after the one listed
	walkListings  = 4                // listings ahead at once, mount-wide
	walkListLimit = 3 * preloadPages // pages a listing ahead may read
	walkTimeout   = 30 * time.Second
)

// listSiblingsAhead starts listings of the subdirectories that follow d in
// its parent, in name order, that the kernel knows and that have no fresh
// listing. It never waits: a listing that finds no free slot is skipped.
func (d *dir) listSiblingsAhead() {
	p := dirOf(&d.Inode)
	if p == nil {
		return
	}
	name, _ := d.Parent()
	for _, n := range p.c.Subdirs(name, walkAhead) {
		ch := p.GetChild(n)
		if ch == nil {
			continue
		}
		sub, ok := ch.Operations().(*dir)
		if !ok || sub.listingFresh() {
			continue
		}
		select {
		case d.fs.walkSlots <- struct{}{}:
		default:
			return // enough listings ahead already
		}
		started := d.fs.background(func(ctx context.Context) {
			defer func() { <-d.fs.walkSlots }()
			ctx, cancel := context.WithTimeout(ctx, walkTimeout)
			defer cancel()
			sub.listPages(ctx, walkListLimit) // an error only means no head start
		})
		if !started {
			<-d.fs.walkSlots // closing: no listing ahead
			return
		}
	}
}

// listingFresh reports whether the directory's listing can be used now.
func (d *dir) listingFresh() bool {
	return d.c.Fresh(d.fs.opts.MetadataTTL)
}
