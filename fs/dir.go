package fs

import (
	"context"
	"errors"
	iofs "io/fs"
	"sort"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sync/errgroup"
)

// dir is a directory node. key is "" for the root, else "a/b".
type dir struct {
	fusefs.Inode
	fs  *FS
	key string

	mu       sync.Mutex
	listing  map[string]entry     // last full listing; guarded by mu
	listedAt time.Time            // when listing was fetched; guarded by mu
	missing  map[string]time.Time // names found missing, and when; guarded by mu
}

var (
	_ fusefs.NodeLookuper  = (*dir)(nil)
	_ fusefs.NodeReaddirer = (*dir)(nil)
	_ fusefs.NodeGetattrer = (*dir)(nil)
	_ fusefs.NodeStatfser  = (*dir)(nil)
)

func (f *FS) newDir(key string) *dir { return &dir{fs: f, key: key} }

// Getattr implements fusefs.NodeGetattrer.
func (d *dir) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fs.fillAttr(&out.Attr, d.key, entry{dir: true})
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
	out.NameLen = maxNameLen
	return 0
}

// Lookup implements fusefs.NodeLookuper.
func (d *dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if len(name) > maxNameLen {
		return nil, syscall.ENAMETOOLONG
	}
	e, known, found := d.cached(name)
	if !known {
		var err error
		e, found, err = d.probe(ctx, name)
		if err != nil {
			return nil, d.fs.toErrno("lookup", childKey(d.key, name), err)
		}
		d.remember(name, e, found)
	}
	if !found {
		out.SetEntryTimeout(d.fs.opts.NegativeTTL)
		return nil, syscall.ENOENT
	}
	return d.childInode(ctx, name, e, out), 0
}

// cached answers a lookup from the last listing or the negative cache.
// known is false when S3 must be asked.
func (d *dir) cached(name string) (e entry, known, found bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if d.listing != nil && now.Sub(d.listedAt) < d.fs.opts.MetadataTTL {
		e, found = d.listing[name]
		return e, true, found
	}
	if at, ok := d.missing[name]; ok {
		if now.Sub(at) < d.fs.opts.NegativeTTL {
			return entry{}, true, false
		}
		delete(d.missing, name)
	}
	return entry{}, false, false
}

func (d *dir) remember(name string, e entry, found bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if found {
		delete(d.missing, name)
		return
	}
	if d.missing == nil {
		d.missing = make(map[string]time.Time)
	}
	d.missing[name] = time.Now()
}

// probe asks S3 whether name is a file, a directory or nothing: a HEAD of
// the object and a listing of "name/" in parallel. A directory wins.
func (d *dir) probe(ctx context.Context, name string) (entry, bool, error) {
	if why := nameProblem(name); why != "" {
		return entry{}, false, nil
	}
	key := childKey(d.key, name)
	var (
		file    entry
		isFile  bool
		isDir   bool
		g, gctx = errgroup.WithContext(ctx)
	)
	g.Go(func() error {
		o, err := d.fs.b.Head(gctx, key)
		if errors.Is(err, iofs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		file, isFile = entry{size: o.Size, mtime: o.LastModified, etag: o.ETag}, true
		return nil
	})
	g.Go(func() error {
		page, err := d.fs.b.List(gctx, key+"/", "")
		if err != nil {
			return err
		}
		isDir = len(page.Objects) > 0 || len(page.Prefixes) > 0
		return nil
	})
	if err := g.Wait(); err != nil {
		return entry{}, false, err
	}
	if isDir {
		if isFile {
			d.fs.logSkipOnce(key, "a directory of the same name hides this file")
		}
		return entry{dir: true}, true, nil
	}
	return file, isFile, nil
}

// childInode returns the inode for a child, reusing the existing one (and
// refreshing its attributes) when its kind has not changed.
func (d *dir) childInode(ctx context.Context, name string, e entry, out *fuse.EntryOut) *fusefs.Inode {
	key := childKey(d.key, name)
	d.fs.fillAttr(&out.Attr, key, e)
	out.SetEntryTimeout(d.fs.opts.MetadataTTL)
	out.SetAttrTimeout(d.fs.opts.MetadataTTL)
	if ch := d.GetChild(name); ch != nil {
		switch n := ch.Operations().(type) {
		case *file:
			if !e.dir {
				n.update(e)
				return ch
			}
		case *dir:
			if e.dir {
				return ch
			}
		}
	}
	if e.dir {
		return d.NewInode(ctx, d.fs.newDir(key), fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: out.Attr.Ino})
	}
	return d.NewInode(ctx, d.fs.newFile(key, e), fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: out.Attr.Ino})
}

// Readdir implements fusefs.NodeReaddirer. It lists the directory fully and
// keeps the listing for lookups (READDIRPLUS looks up every entry).
func (d *dir) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	entries, err := d.list(ctx)
	if err != nil {
		return nil, d.fs.toErrno("readdir", d.key, err)
	}
	names := make([]string, 0, len(entries))
	for name := range entries {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]fuse.DirEntry, 0, len(names))
	for _, name := range names {
		e := entries[name]
		mode := uint32(syscall.S_IFREG)
		if e.dir {
			mode = syscall.S_IFDIR
		}
		out = append(out, fuse.DirEntry{Name: name, Mode: mode, Ino: inodeNumber(childKey(d.key, name), e.dir)})
	}
	return fusefs.NewListDirStream(out), 0
}

// list returns the directory's entries, from the last listing when fresh.
func (d *dir) list(ctx context.Context) (map[string]entry, error) {
	d.mu.Lock()
	if d.listing != nil && time.Since(d.listedAt) < d.fs.opts.MetadataTTL {
		l := d.listing
		d.mu.Unlock()
		return l, nil
	}
	d.mu.Unlock()

	started := time.Now()
	prefix := listingPrefix(d.key)
	entries := make(map[string]entry)
	token := ""
	for {
		page, err := d.fs.b.List(ctx, prefix, token)
		if err != nil {
			return nil, err
		}
		addListing(entries, prefix, page, d.fs.logSkipOnce)
		if page.Next == "" {
			break
		}
		token = page.Next
	}
	d.mu.Lock()
	d.listing, d.listedAt, d.missing = entries, started, nil
	d.mu.Unlock()
	return entries, nil
}
