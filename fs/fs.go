package fs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"mount-ws/vfs"
)

// FS is one mounted workspace. Create it with New and serve Root through
// go-fuse (see Mount).
type FS struct {
	b       Bucket
	opts    Options
	log     *slog.Logger
	budget  *vfs.Budget
	space   *vfs.Space
	stage   *vfs.StagingArea // where files open for writing are copied
	journal *vfs.Journal
	errs    errLog
	counts  counters
	start   time.Time // mount time: the times of directories without a marker

	files *vfs.Files              // what the files hold and save
	names *vfs.Namespace          // names made and removed
	inos  vfs.Inos[*fusefs.Inode] // inode numbers derived from keys

	walkSlots chan struct{} // listings ahead running now (see walk.go)

	// Background work that no request waits for (listings ahead, kernel
	// notifications): Close cancels bgCtx and waits for bg.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
	bgMu     sync.Mutex
	bgClosed bool           // guarded by bgMu
	dirs     *vfs.DirCaches // every directory's listing, by path
	bodies   *vfs.Bodies    // small files' bytes fetched by their lookups
	finder   *vfs.Finder    // what a name is, when no listing knows
	// passthrough: the kernel of the mount reads files passed to it, and
	// this process may register them (root); set by Mount.
	passthrough atomic.Bool
	passed      passedThrough // files with handles passed through
	root        *dir
}

// New returns a filesystem over b. Call Recover before mounting, and Close
// after unmounting.
func New(b Bucket, opts Options) *FS {
	opts = opts.withDefaults()
	f := &FS{
		b:      uncancelled{b},
		opts:   opts,
		log:    opts.Logger,
		budget: vfs.NewBudget(opts.PrefetchMemory),
		space:  vfs.NewSpace(opts.CacheLimit),
		dirs:   vfs.NewDirCaches(vfs.MaxIdleCacheEntries, opts.Clock),
		bodies: vfs.NewBodies(vfs.BodiesLimit, opts.MetadataTTL, opts.Clock),
		start:  time.Now(),

		walkSlots: make(chan struct{}, walkListings),
	}
	journalDir := ""
	if opts.CacheDir != "" {
		journalDir = filepath.Join(opts.CacheDir, "uploads")
	}
	f.journal = vfs.NewJournal(journalDir, opts.Logger)
	f.stage = &vfs.StagingArea{
		Store: f.b, Dir: opts.CacheDir, Space: f.space, Budget: f.budget, Journal: f.journal,
		PartSize: opts.PartSize, Concurrency: opts.UploadConcurrency, Log: opts.Logger,
	}
	f.files = vfs.NewFiles(vfs.FilesConfig{
		Store: f.b, Stage: f.stage, Dirs: f.dirs, Bodies: f.bodies, Budget: f.budget, DataCache: opts.DataCache,
		MetadataTTL:   opts.MetadataTTL,
		RetryInterval: opts.RetryInterval, Clock: opts.Clock, Log: opts.Logger,
	})
	f.names = vfs.NewNamespace(f.b, f.files)
	f.finder = &vfs.Finder{Store: f.b, Dirs: f.dirs, Skip: f.logSkipOnce}
	if opts.MetadataTTL > 0 { // else nothing a lookup fetched would be kept
		f.finder.Bodies = f.bodies
	}
	f.root = f.newDir("", vfs.Entry{})
	f.bgCtx, f.bgCancel = context.WithCancel(context.Background())
	return f
}

// background runs fn in a goroutine that Close waits for, with a context
// that Close cancels and that keeps LISTs cancellable (see uncancelled):
// no program waits for background work, so nothing is half done by
// stopping it. Once Close has begun, fn is not run, and background
// reports false.
func (f *FS) background(fn func(ctx context.Context)) bool {
	f.bgMu.Lock()
	defer f.bgMu.Unlock()
	if f.bgClosed {
		return false
	}
	f.bg.Add(1)
	go func() {
		defer f.bg.Done()
		fn(context.WithValue(f.bgCtx, cancellableKey{}, true))
	}()
	return true
}

// stopBackground cancels the background work and waits for it to end.
func (f *FS) stopBackground() {
	f.bgMu.Lock()
	f.bgClosed = true
	f.bgMu.Unlock()
	f.bgCancel()
	f.bg.Wait()
}

// Close stops the background retries after one last attempt, and reports
// how many files still hold unsaved data. It returns once every goroutine
// the filesystem started has ended.
func (f *FS) Close(ctx context.Context) int {
	f.stopBackground()
	return f.files.Close(ctx)
}

// Recover aborts the multipart uploads that an earlier mount-ws with the
// same cache directory started and never finished (it crashed), and
// returns how many.
func (f *FS) Recover(ctx context.Context) (int, error) { return f.journal.Recover(ctx, f.b) }

// Root returns the root directory node, to pass to go-fuse.
func (f *FS) Root() fusefs.InodeEmbedder { return f.root }

// PrefetchBytes reports the read-ahead memory in use now and at its peak.
func (f *FS) PrefetchBytes() (now, peak int64) { return f.budget.InUse() }

// MountConfig is what Mount needs besides the filesystem.
type MountConfig struct {
	// FsName shows in /proc/mounts and df, e.g. "mount-ws:org/ws".
	FsName string
	// AllowOther lets users other than the mounting one in; AllowRoot
	// lets only root in besides them. Either way the kernel checks every
	// access against the mode, owner and group that Getattr reports
	// (default_permissions), as on a local filesystem.
	AllowOther bool
	AllowRoot  bool
	// Xattrs turns extended attributes on (xattr.go). Off, the kernel
	// answers every xattr call itself: ls -l asks two per file, and each
	// would be a round trip to this process.
	Xattrs bool
	// Debug logs every FUSE request (very verbose).
	Debug bool
	// Observe, if set, is told about every FUSE request (metrics).
	Observe OpObserver
}

// Mount mounts f at mountpoint and returns the serving fuse.Server. As
// root it mounts with mount(2) directly; otherwise through fusermount3.
func Mount(mountpoint string, f *FS, cfg MountConfig) (*fuse.Server, error) {
	entry, neg := f.opts.MetadataTTL, f.opts.NegativeTTL
	root := syscall.Getuid() == 0
	opts := &fusefs.Options{
		// No AttrTimeout: go-fuse would put it in place of every zero
		// one, and zero is what makes the kernel ask Getattr for an
		// entry whose metadata is still to be read (dir.childInode).
		EntryTimeout:    &entry,
		NegativeTimeout: &neg,
		UID:             f.opts.UID,
		GID:             f.opts.GID,
		// A file created with mode 0 has mode 0 (go-fuse would show 0644).
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName: cfg.FsName,
			Name:   "mount-ws",
			Debug:  cfg.Debug,
			// Large requests: fewer round trips through the kernel for
			// sequential reads, which the read-ahead then serves.
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			// Let the kernel send concurrent reads; read-ahead handles
			// the reordering.
			MaxBackground: 64,
			// As root, mount(2) directly: no fusermount3 needed.
			DirectMountStrict: root,
			DirectMountFlags:  syscall.MS_NOATIME | syscall.MS_NOSUID | syscall.MS_NODEV,
			DisableXAttrs:     !cfg.Xattrs,
			// Reads are served from memory: splicing gains nothing, and a
			// 1 MiB read plus its header exceeds a pipe, which go-fuse
			// logs on every read.
			DisableSplice:        true,
			IgnoreSecurityLabels: true,
		},
	}
	if !root {
		opts.MountOptions.Options = []string{"noatime"}
	}
	// The kernel enforces permissions: without this, FUSE lets anyone
	// who reaches the mount do anything (mountpoint-s3 does the same).
	opts.MountOptions.Options = append(opts.MountOptions.Options, "default_permissions")
	opts.MountOptions.AllowOther = cfg.AllowOther || cfg.AllowRoot
	raw := fusefs.NewNodeFS(f.Root(), opts)
	if cfg.AllowRoot && !cfg.AllowOther {
		raw = ownerOrRoot{RawFileSystem: raw, owner: uint32(syscall.Getuid())}
	}
	if cfg.Observe != nil {
		raw = observed{RawFileSystem: raw, report: cfg.Observe}
	}
	server, err := fuse.NewServer(raw, mountpoint, &opts.MountOptions)
	if err != nil {
		return nil, err
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, err
	}
	f.passthrough.Store(root && server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH != 0)
	if root {
		// The kernel reads ahead only 128 KiB on a FUSE mount by default,
		// so a sequential reader costs a request per 128 KiB; 1 MiB (the
		// largest request) cuts that eightfold. Only root may set it.
		if err := setReadAhead(mountpoint, 1024); err != nil {
			f.log.Warn("could not raise the kernel read-ahead", slog.Any("err", err))
		}
	}
	return server, nil
}

// setReadAhead sets the kernel read-ahead of the filesystem mounted at
// mountpoint, in KiB.
func setReadAhead(mountpoint string, kb int) error {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return err
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(path, []byte(strconv.Itoa(kb)), 0o644)
}

// fillAttr fills out with the attributes of an entry.
// The inode number is the caller's to set.
func (f *FS) fillAttr(out *fuse.Attr, e vfs.Entry) {
	mtime, atime, ctime := e.Times()
	for _, t := range []*time.Time{&mtime, &atime, &ctime} {
		if t.IsZero() {
			*t = f.start
		}
	}
	out.Uid, out.Gid = f.opts.UID, f.opts.GID
	if e.Owner {
		out.Uid, out.Gid = e.UID, e.GID
	}
	out.SetTimes(&atime, &mtime, &ctime)
	out.Blksize = 1 << 20
	// Directories say 1 link, the convention for "not counted": GNU find
	// would otherwise take 2 for "no subdirectories" and skip them.
	out.Nlink = 1
	switch kind := e.Kind(); kind {
	case syscall.S_IFDIR:
		out.Mode = kind | f.opts.DirMode
		out.Size = 4096
	case syscall.S_IFLNK:
		out.Mode = kind | 0o777
		out.Size = uint64(e.Size)
	case syscall.S_IFREG:
		out.Mode = kind | f.opts.FileMode
		out.Size = uint64(e.Size)
		out.Blocks = (uint64(e.Size) + 511) / 512
	default: // FIFO, socket or device node: no data of its own
		out.Mode = kind | f.opts.FileMode
		out.Rdev = e.Rdev
	}
	if perm := e.Mode & 0o7777; e.Mode != 0 && !e.IsSymlink() {
		out.Mode = out.Mode&syscall.S_IFMT | perm
	}
}

// refuseWrite is EROFS on a read-only mount, else 0.
func (f *FS) refuseWrite() syscall.Errno {
	if f.opts.ReadOnly {
		return syscall.EROFS
	}
	return 0
}

// releaseIno frees the inode number of in, a node the kernel forgot
// (see vfs.Inos).
func (f *FS) releaseIno(in *fusefs.Inode) {
	// go-fuse may call OnForget of a directory that a lookup has just
	// revived, so the node is asked too.
	//lint:ignore SA1019 OnForget alone cannot tell a revived directory
	f.inos.Release(in.StableAttr().Ino, in, in.Forgotten)
}
