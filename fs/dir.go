package fs

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mount-ws/bucket"
	"mount-ws/vfs"
)

// dir is a directory node. Its key is its path in the tree ("" for the
// root, else "a/b"), so a rename moves it without any bookkeeping here.
type dir struct {
	fusefs.Inode
	fs *FS
	c  *vfs.DirCache // what is known of its entries, kept by path

	mu      sync.Mutex
	attr    vfs.Entry // mode and times set through this mount; guarded by mu
	release sync.Once // of c, when the kernel forgets the node
}

// A directory that gets preloadAfter lookups without being listed is
// listed instead (up to preloadPages pages): a program opening many files
// by name then costs a few LISTs instead of two requests a file.
const (
	preloadAfter = 8
	preloadPages = 10
)

// countProbe counts a lookup that would go to S3 and reports whether the
// directory should rather be listed.
func (d *dir) countProbe() bool { return d.c.CountProbe(preloadAfter) }

var (
	_ fusefs.NodeLookuper    = (*dir)(nil)
	_ fusefs.NodeReaddirer   = (*dir)(nil)
	_ fusefs.NodeGetattrer   = (*dir)(nil)
	_ fusefs.NodeStatfser    = (*dir)(nil)
	_ fusefs.NodeOnForgetter = (*dir)(nil)
)

func (f *FS) newDir(key string, e vfs.Entry) *dir {
	e.Dir = true
	return &dir{fs: f, attr: e, c: f.dirs.Hold(key)}
}

// OnForget implements fusefs.NodeOnForgetter: the kernel forgot the
// directory. Its cache stays, for the next node made for its path.
func (d *dir) OnForget() {
	d.release.Do(func() { d.fs.dirs.Release(d.c) })
	d.fs.releaseIno(&d.Inode)
	d.fs.counts.forgotten.Add(1)
}

func (d *dir) key() string { return d.Path(nil) }

// Getattr implements fusefs.NodeGetattrer.
func (d *dir) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.mu.Lock()
	e := d.attr
	d.mu.Unlock()
	if p := dirOf(&d.Inode); !e.Meta && p != nil && p.wantsMeta() {
		if err := p.fillMeta(ctx, true, baseName(d.key())); err != nil {
			return d.fs.toErrno("getattr", d.key(), err)
		}
		d.mu.Lock()
		e = d.attr
		d.mu.Unlock()
	}
	d.fs.fillAttr(&out.Attr, e)
	out.Attr.Ino = d.StableAttr().Ino
	out.SetTimeout(d.fs.opts.MetadataTTL)
	return 0
}

// Statfs implements fusefs.NodeStatfser: S3 has no capacity, so report a
// large free space that tools like df and cp's space checks accept.
func (d *dir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	const blocks = 1 << 40 // 1 PiB in 1 KiB blocks
	out.Bsize = 1 << 10
	out.Frsize = 1 << 10
	out.Blocks, out.Bfree, out.Bavail = blocks, blocks, blocks
	out.Files, out.Ffree = 1<<40, 1<<40
	out.NameLen = vfs.MaxNameLen
	return 0
}

// Lookup implements fusefs.NodeLookuper.
func (d *dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	e, found, errno := d.find(ctx, name)
	if errno != 0 {
		return nil, errno
	}
	if !found {
		out.SetEntryTimeout(d.fs.opts.NegativeTTL)
		return nil, syscall.ENOENT
	}
	return d.childInode(ctx, name, e, out), 0
}

// find returns what name is in this directory: from the last listing, the
// negative cache, a child with unsaved content, or else from S3.
func (d *dir) find(ctx context.Context, name string) (vfs.Entry, bool, syscall.Errno) {
	if len(name) > vfs.MaxNameLen || errors.Is(d.fs.b.CheckKey(vfs.ChildKey(d.key(), name)), bucket.ErrKeyTooLong) {
		return vfs.Entry{}, false, syscall.ENAMETOOLONG
	}
	if e, ok := d.localChild(name); ok {
		return e, true, 0
	}
	e, known, found := d.cached(name)
	if known {
		d.fs.counts.metaHits.Add(1)
		return e, found, 0
	}
	seen, learned := d.c.Learned(name, d.fs.opts.MetadataTTL)
	if learned && seen.Meta {
		// A directory without a marker seen in a lookup's page, or what
		// the lookup's own HEAD said of a name (the kernel forgot it).
		d.fs.counts.metaHits.Add(1)
		return seen, true, 0
	}
	d.fs.counts.metaMisses.Add(1)
	if d.countProbe() {
		// Many lookups here: list the directory once instead, if it is
		// not too large, and answer them all from the listing.
		e, found, known, err := d.listFor(ctx, name)
		if err != nil {
			return vfs.Entry{}, false, d.fs.toErrno("lookup", vfs.ChildKey(d.key(), name), err)
		}
		if known {
			return e, found, 0
		}
	}
	var err error
	if learned {
		// Seen in a lookup's page: its metadata is still to be read, one
		// HEAD of the object or of the directory's marker.
		e, found, err = d.readLearned(ctx, name, seen)
	} else {
		e, found, err = d.probe(ctx, name)
	}
	if err != nil {
		return vfs.Entry{}, false, d.fs.toErrno("lookup", vfs.ChildKey(d.key(), name), err)
	}
	d.remember(name, e, found)
	return e, found, 0
}

// localChild answers for a child whose content exists only here so far (a
// file being written that was never uploaded).
func (d *dir) localChild(name string) (vfs.Entry, bool) {
	if f, ok := d.childFile(name); ok {
		return f.state.LocalEntry()
	}
	if d.GetChild(name) == nil {
		return d.fs.files.OrphanEntry(vfs.ChildKey(d.key(), name))
	}
	return vfs.Entry{}, false
}

func (d *dir) childFile(name string) (*file, bool) {
	f, ok := d.childNode(name).(*file)
	return f, ok
}

// childNode is the node of name in go-fuse's tree (a *file or *dir), nil
// if the kernel holds none.
func (d *dir) childNode(name string) fusefs.InodeEmbedder {
	if ch := d.GetChild(name); ch != nil {
		return ch.Operations()
	}
	return nil
}

// cached answers a lookup from the last listing or the negative cache.
// known is false when S3 must be asked.
func (d *dir) cached(name string) (e vfs.Entry, known, found bool) {
	return d.c.Lookup(name, d.fs.opts.MetadataTTL, d.fs.opts.NegativeTTL)
}

func (d *dir) remember(name string, e vfs.Entry, found bool) { d.c.Remember(name, e, found) }

// entriesChanged gives the directory the mtime and ctime of a change of
// its entries made now. They are kept in memory only: storing them would
// rewrite the marker at every create, and S3 has no directory to carry
// them. A remount shows the marker's times again.
func (d *dir) entriesChanged() {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.attr.SetMtime(now)
	d.attr.SetCtime(now)
}

// setEntry records a change made through this mount in the cached listing,
// so it shows at once. A nil e removes the name.
func (d *dir) setEntry(name string, e *vfs.Entry) { d.c.Set(name, e) }

// probe asks S3 what name is (vfs.Finder.Probe).
func (d *dir) probe(ctx context.Context, name string) (vfs.Entry, bool, error) {
	return d.fs.finder.Probe(ctx, d.key(), name)
}

// readLearned completes what a page of keys showed of name with its
// metadata (vfs.Finder.ReadLearned).
func (d *dir) readLearned(ctx context.Context, name string, e vfs.Entry) (vfs.Entry, bool, error) {
	return d.fs.finder.ReadLearned(ctx, vfs.ChildKey(d.key(), name), e)
}

// childInode returns the inode for a child, reusing the existing one (and
// refreshing its attributes) when its kind has not changed.
//
// An entry known only from a listing, in a directory whose entries get
// their metadata read (wantsMeta), is given no attribute lifetime: the
// kernel then asks Getattr before it uses them, which reads the metadata.
func (d *dir) childInode(ctx context.Context, name string, e vfs.Entry, out *fuse.EntryOut) *fusefs.Inode {
	attrTTL := func(e vfs.Entry) time.Duration {
		if !e.Meta && d.wantsMeta() {
			return 0
		}
		return d.fs.opts.MetadataTTL
	}
	if ch := d.GetChild(name); ch != nil {
		switch n := ch.Operations().(type) {
		case *file:
			if _, gone := n.state.Unlinked(); e.Dir || gone {
				// A node marked deleted (replaced by a failed rename's
				// copy) never stands for the name again.
				break
			}
			// A listing knows no metadata: the node may know this
			// version is a symlink, or its mode. The kernel cannot
			// change an inode's type, so a file that turned out to be
			// a link (or no longer is) gets a new inode.
			merged := vfs.KeepKnownMeta(n.state.Attr(), e)
			if merged.Kind() == ch.StableAttr().Mode {
				e = d.fs.files.Update(n.state, merged)
				d.fs.fillAttr(&out.Attr, e)
				out.Attr.Ino = ch.StableAttr().Ino
				out.SetEntryTimeout(d.fs.opts.MetadataTTL)
				out.SetAttrTimeout(attrTTL(e))
				return ch
			}
			// The new inode gets the kind the node learnt, not the
			// listing's guess: in a directory whose metadata is not
			// read, the listing would type a link as a file again.
			e = merged
		case *dir:
			if e.Dir {
				n.mu.Lock()
				if e.Meta && !n.attr.Meta {
					n.attr = e
				}
				e = n.attr
				n.mu.Unlock()
				d.fs.fillAttr(&out.Attr, e)
				out.Attr.Ino = ch.StableAttr().Ino
				out.SetEntryTimeout(d.fs.opts.MetadataTTL)
				out.SetAttrTimeout(attrTTL(e))
				return ch
			}
		}
	}
	node := d.fs.newNode(vfs.ChildKey(d.key(), name), e)
	if n, ok := node.(*file); ok {
		if s, ok := d.fs.files.Adopt(vfs.ChildKey(d.key(), name), n); ok {
			n.state = s
			e = s.Attr() // what this mount says the file is, unsaved data included
		}
	}
	d.fs.fillAttr(&out.Attr, e)
	out.SetEntryTimeout(d.fs.opts.MetadataTTL)
	out.SetAttrTimeout(attrTTL(e))
	// The same number as the last node of this name, unless that one is
	// still in use (see vfs.Inos).
	ino := d.fs.inos.Take(vfs.ChildKey(d.key(), name), node.EmbeddedInode())
	return d.NewInode(ctx, node, fusefs.StableAttr{Mode: out.Attr.Mode & syscall.S_IFMT, Ino: ino})
}

// dirOf is the directory an inode is in, if it is still in the tree.
func dirOf(in *fusefs.Inode) *dir {
	_, p := in.Parent()
	if p == nil {
		return nil
	}
	d, _ := p.Operations().(*dir)
	return d
}

// newNode makes the node for an entry: directory, symlink or file.
func (f *FS) newNode(key string, e vfs.Entry) fusefs.InodeEmbedder {
	if e.Dir {
		return f.newDir(key, e)
	}
	return f.newFile(e)
}

// Readdir implements fusefs.NodeReaddirer. It lists the directory fully and
// keeps the listing for lookups (READDIRPLUS looks up every entry).
func (d *dir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	var out []fuse.DirEntry
	collect := func(name string, kind uint32) { out = append(out, fuse.DirEntry{Name: name, Mode: kind}) }
	// A rename under way may drop the listing just read: read it again.
	listed := false
	for try := 0; !listed; try++ {
		if try == 3 {
			return nil, d.fs.toErrno("readdir", d.key(), errors.New("the listing was dropped three times while being read (renames under way)"))
		}
		if _, err := d.listPages(ctx, 0); err != nil {
			return nil, d.fs.toErrno("readdir", d.key(), err)
		}
		out = append(out[:0], fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR}, fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR})
		listed = d.c.EachName(collect)
	}
	d.listSiblingsAhead()
	slices.SortFunc(out[2:], func(a, b fuse.DirEntry) int { return strings.Compare(a.Name, b.Name) })
	for i := range out[2:] {
		if ch := d.GetChild(out[2+i].Name); ch != nil {
			out[2+i].Ino = ch.StableAttr().Ino
		}
	}
	return fusefs.NewListDirStream(out), 0
}

// listPages lists the directory into its cache, unless the cache holds a
// fresh listing, reading at most maxPages pages (0: all); complete is
// false when that was not enough, and then nothing is kept. One listing of
// a directory runs at a time: a call that finds one under way waits for
// it, and then uses what it read.
func (d *dir) listPages(ctx context.Context, maxPages int) (complete bool, err error) {
	complete, _, _, err = d.listOrWait(ctx, maxPages, "")
	return complete, err
}

// listFor lists the directory for a lookup of name, as listPages does
// with preloadPages pages at most, and answers from the listing. A lookup
// that finds a listing under way is answered as soon as a page holds its
// name. known is false when the listing cannot answer (the directory is
// too big to list for lookups).
func (d *dir) listFor(ctx context.Context, name string) (e vfs.Entry, found, known bool, err error) {
	complete, e, early, err := d.listOrWait(ctx, preloadPages, name)
	switch {
	case err != nil || !complete:
		return vfs.Entry{}, false, false, err
	case early:
		return e, true, true, nil
	}
	e, found, known = d.c.Listed(name)
	return e, found, known, nil
}

// listOrWait is listPages; with name set, a wait for another call's
// listing ends as soon as one of its pages holds name (early, with the
// name's entry), unless name has a node, which only the finished listing
// merges with what this mount knows of it.
func (d *dir) listOrWait(ctx context.Context, maxPages int, name string) (complete bool, e vfs.Entry, early bool, err error) {
	for {
		if maxPages > 0 && d.c.TooBig() {
			return false, vfs.Entry{}, false, nil
		}
		if d.c.Fresh(d.fs.opts.MetadataTTL) {
			return true, vfs.Entry{}, false, nil
		}
		p, under := d.c.StartListing(vfs.ListingPrefix(d.key()))
		if p != nil {
			complete, err := d.list(ctx, p, maxPages)
			return complete, vfs.Entry{}, false, err
		}
		if name != "" && d.GetChild(name) == nil {
			if e, ok := under.WaitListed(ctx, name); ok {
				return true, e, true, nil
			}
		}
		if err := waitEnded(ctx, under); err != nil {
			return false, vfs.Entry{}, false, err
		}
	}
}

// waitEnded waits for a listing under way to end. Only background work
// (listings ahead) stops waiting when its context ends: a lookup must not
// fail with EINTR because its caller got a signal (see uncancelled).
func waitEnded(ctx context.Context, p *vfs.Partial) error {
	var stop <-chan struct{}
	if ctx.Value(cancellableKey{}) != nil {
		stop = ctx.Done()
	}
	select {
	case <-p.Ended():
		return nil
	case <-stop:
		return ctx.Err()
	}
}

// list reads the listing p, of which this call is the lister, into the
// cache, at most maxPages pages (0: all); complete is false when that was
// not enough, and then nothing is kept. Lookups waiting for the listing
// are answered page by page meanwhile. A fresh listing keeps what is known
// of unchanged objects' metadata, and children being written here that S3
// does not have yet.
func (d *dir) list(ctx context.Context, p *vfs.Partial, maxPages int) (complete bool, err error) {
	defer p.End()
	started := time.Now()
	complete, err = p.Read(ctx, d.fs.b, maxPages, d.fs.opts.MetadataTTL, d.fs.logSkipOnce)
	if !complete || err != nil {
		return false, err
	}
	entries := p.Entries()
	for name, ch := range d.Children() {
		f, ok := ch.Operations().(*file)
		if !ok {
			continue
		}
		if e, ok := f.state.LocalEntry(); ok {
			entries[name] = e
		} else if e, ok := entries[name]; ok {
			entries[name] = vfs.KeepKnownMeta(f.state.Attr(), e)
		} else if e, ok := d.fs.files.SavedSince(f.state, started); ok {
			// Saved while this listing was being read: S3 may not
			// have shown it yet.
			entries[name] = e
		}
	}
	for name, e := range d.fs.files.OrphansIn(d.key()) {
		if d.GetChild(name) == nil {
			entries[name] = e
		}
	}
	// A rename of the directory while it was read: what was read may be
	// from before its copies, so it is not kept.
	return p.Install(entries, time.Since(started)), nil
}

// wantsMeta reports whether this directory's entries get their metadata
// (mode, owner, mtime, symlink) read from S3, with a HEAD each, when a
// program first looks at them: only in directories of at most
// Options.MetadataHeadLimit entries. Larger ones show the listing's
// attributes: "ls -l" of 100,000 files must not cost 100,000 requests.
func (d *dir) wantsMeta() bool {
	return d.c.WantsMeta(d.fs.opts.MetadataHeadLimit)
}

// fillMeta reads the metadata of the entry name of the cached listing, a
// file (or, with dirs, a directory). The first entry asked for after a
// listing is read alone: a program reading one file (cat, pandas) costs
// one HEAD. The second starts a batch of every entry of that kind with
// none yet, many at once: a program that stats two entries (ls -l, cp -p,
// rsync) stats them all. One that only walks the tree (find, os.walk)
// stats directories only and then costs nothing for the files.
func (d *dir) fillMeta(ctx context.Context, dirs bool, name string) error {
	defer d.c.LockFilling()()
	todo := d.c.MetaWanted(dirs, name)
	if len(todo) == 0 {
		return nil
	}
	found, err := d.fs.headAll(ctx, vfs.ListingPrefix(d.key()), todo)
	if err != nil {
		return err
	}
	d.c.MetaRead(found)
	for name, r := range found {
		ch := d.GetChild(name)
		if ch == nil || r.Gone {
			continue
		}
		h := r.Entry
		switch n := ch.Operations().(type) {
		case *file:
			if !h.Dir {
				d.fs.files.Update(n.state, h)
			}
		case *dir:
			n.mu.Lock()
			if h.Dir && !n.attr.Meta {
				n.attr = h
			}
			n.mu.Unlock()
		}
	}
	return nil
}

// headAll reads the metadata of entries (vfs.HeadAll). An entry whose
// HEAD fails is left out (it stays unread, and is asked again later), and
// logged; only when every HEAD fails is that an error.
func (f *FS) headAll(ctx context.Context, prefix string, entries map[string]vfs.Entry) (map[string]vfs.MetaResult, error) {
	found, failed := vfs.HeadAll(ctx, f.b, prefix, entries)
	var firstErr error
	for _, name := range slices.Sorted(maps.Keys(failed)) {
		err := failed[name]
		if firstErr == nil {
			firstErr = err
		}
		f.toErrno("stat", prefix+name, err) // logged once per cause
	}
	if len(found) == 0 && firstErr != nil {
		return nil, firstErr
	}
	return found, nil
}
