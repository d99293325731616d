package vfs

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"mount-ws/datacache"
)

// FileStore is what the files of a mount need of the storage besides
// their staging copies (StagingArea.Store).
type FileStore interface {
	MetaStore
	Getter
	// Delete removes the object at key.
	Delete(ctx context.Context, key string) error
}

// FilesConfig is what a mount's Files are made of.
type FilesConfig struct {
	Store FileStore
	Stage *StagingArea // where files open for writing are copied
	Dirs  *DirCaches   // every directory's listing: a save shows there at once
	// Bodies holds small files' bytes that their lookups fetched, for the
	// first read.
	Bodies *Bodies
	Budget *Budget // the read-ahead memory of all handles
	// DataCache, when set, keeps the blocks that reads fetch on local
	// disk, for the next read of the same version.
	DataCache *datacache.Cache
	// MetadataTTL is how long attributes S3 confirmed stand without
	// asking again.
	MetadataTTL time.Duration
	// RetryInterval is the first wait before a failed upload is tried
	// again (WriteBack).
	RetryInterval time.Duration
	Clock         Clock // nil: time.Now
	Log           *slog.Logger
}

// Files does for a mount's files what needs the storage or what the
// files share: reading and saving them, the retry of failed uploads, and
// the files whose node the kernel forgot with data still to save.
type Files struct {
	store     FileStore
	stage     *StagingArea
	dirs      *DirCaches
	bodies    *Bodies
	budget    *Budget
	cache     *datacache.Cache
	cacheWarn sync.Once // a block that could not be kept is said once
	ttl       time.Duration
	log       *slog.Logger
	start     time.Time // the epoch of stamps
	writeBack *WriteBack[*File]

	saves, saveFailures    atomic.Uint64
	handles                atomic.Int64
	readAhead              HitCounts
	cacheHits, cacheMisses atomic.Uint64 // blocks read from the data cache, and fetched into it
}

// NewFiles returns the files of a mount. Close stops their background
// retries.
func NewFiles(c FilesConfig) *Files {
	fs := &Files{
		store: c.Store, stage: c.Stage, dirs: c.Dirs, bodies: c.Bodies, budget: c.Budget, cache: c.DataCache,
		ttl: c.MetadataTTL, log: c.Log, start: time.Now(),
	}
	fs.writeBack = NewWriteBack(fs.retrySave, c.RetryInterval, c.Clock)
	return fs
}

// FileCounts are what a mount's files did, for metrics.
type FileCounts struct {
	Saves, SaveFailures            uint64
	OpenHandles                    int64
	ReadAheadHits, ReadAheadMisses uint64 // reads served from the read-ahead, and not
	DataCacheHits, DataCacheMisses uint64 // blocks read from the data cache, and fetched into it
}

// Counts returns the counters.
func (fs *Files) Counts() FileCounts {
	return FileCounts{
		Saves: fs.saves.Load(), SaveFailures: fs.saveFailures.Load(), OpenHandles: fs.handles.Load(),
		ReadAheadHits: fs.readAhead.Hits.Load(), ReadAheadMisses: fs.readAhead.Misses.Load(),
		DataCacheHits: fs.cacheHits.Load(), DataCacheMisses: fs.cacheMisses.Load(),
	}
}

// stamp is now on the mount's monotonic clock, in nanoseconds since it
// started: 8 bytes where a time.Time takes 24, in every File.
func (fs *Files) stamp() int64 { return fs.stampOf(time.Now()) }

// stampOf is t on the same clock.
func (fs *Files) stampOf(t time.Time) int64 { return int64(t.Sub(fs.start)) }

// sinceStamp is how long ago stamp s was.
func (fs *Files) sinceStamp(s int64) time.Duration { return time.Duration(fs.stamp() - s) }

// neverChecked is a stamp older than any TTL: what was never confirmed.
const neverChecked = -1 << 62

// NewFile returns the File for a name a lookup or listing described as
// e, with node standing for it.
func (fs *Files) NewFile(node Node, e Entry) *File {
	return &File{node: node, attr: e, checkedAt: fs.stamp()}
}

// Created returns the one open handle of a file created here as key,
// described by e, staged empty and to be saved at the handle's close. A
// file queued under the name whose node the kernel forgot is dropped
// once the new one is made: the new file replaces it (a create that
// fails leaves it queued).
func (fs *Files) Created(key string, node Node, e Entry, appendOnly bool) (*Handle, error) {
	st, err := fs.stage.Empty(true)
	if err != nil {
		return nil, err
	}
	fs.dropOrphan(key)
	f := fs.NewFile(node, e)
	f.act = &activity{st: st, unsaved: true, handles: 1} // not shared yet
	fs.handles.Add(1)
	h := &Handle{f: f, attr: e, appendOnly: appendOnly}
	f.setWriting(&h.writer, true)
	return h, nil
}

// addHandle counts a new open handle of f. It is counted before the file
// is staged, so that the release of another handle meanwhile does not drop
// the staging copy this one is about to use.
func (fs *Files) addHandle(f *File) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.activeLocked().handles++
	fs.handles.Add(1)
}

// Update merges attributes seen in a listing or lookup and returns what
// the file now says. A file with local changes keeps its own view.
func (fs *Files) Update(f *File, e Entry) Entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.localChangesLocked() {
		return f.attr
	}
	f.attr, f.checkedAt = KeepKnownMeta(f.attr, e), fs.stamp()
	if f.act != nil {
		f.act.timeGuessed = false
	}
	return f.attr
}

// SavedSince returns the file's attributes if this mount confirmed or
// saved them after t (and it was not deleted since).
func (fs *Files) SavedSince(f *File, t time.Time) (Entry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deletedLocked() || f.checkedAt <= fs.stampOf(t) {
		return Entry{}, false
	}
	return f.attr, true
}

// Current returns the file's attributes, asking S3 when they are older
// than the metadata TTL and the file has no local changes.
func (fs *Files) Current(ctx context.Context, f *File) (Entry, error) {
	f.mu.Lock()
	e := f.attr
	recent := fs.sinceStamp(f.checkedAt) < fs.ttl
	fresh := f.localChangesLocked() || (!f.timeGuessedLocked() && (f.stLocked() != nil || recent))
	f.mu.Unlock()
	if fresh {
		return e, nil
	}
	return fs.head(ctx, f)
}

// head asks S3 what the file is, and takes it (learnt).
func (fs *Files) head(ctx context.Context, f *File) (Entry, error) {
	o, err := fs.store.Head(ctx, f.key())
	if err != nil {
		return Entry{}, err
	}
	return fs.learnt(f, EntryFromObject(o)), nil
}

// Revalidate returns the file's attributes for an open: what S3 holds
// now, so that a new open reads what another client just wrote (one HEAD
// per open, as mountpoint-s3 does). A file with local changes or being
// written here is what this mount says. When the object changed, the
// kernel is told to forget the attributes it caches (size above all);
// the open then drops the pages it caches (no FOPEN_KEEP_CACHE).
func (fs *Files) Revalidate(ctx context.Context, f *File) (Entry, error) {
	e, local := f.attrLocal()
	if local {
		return e, nil
	}
	fresh, err := fs.head(ctx, f)
	if err != nil {
		return Entry{}, err
	}
	if fresh.ETag != e.ETag {
		f.nodeNow().AttrsChanged()
	}
	return fresh, nil
}

// Learn asks S3 what the file is unless something here answers for it
// or its metadata is known, and returns what the file is now.
func (fs *Files) Learn(ctx context.Context, f *File) (Entry, error) {
	if e, local := f.attrLocal(); e.Meta || local {
		return e, nil
	}
	return fs.head(ctx, f)
}

// learnt takes what a HEAD said about the file, and records it in its
// directory's listing too: the kernel may forget the file's node, and the
// next lookup must not make a node from the listing's guess again (a link
// typed as a file would answer ESTALE once more, past the kernel's one
// retry).
func (fs *Files) learnt(f *File, seen Entry) Entry {
	e := fs.Update(f, seen)
	if key, in := f.treeKey(); in {
		fs.dirs.Remember(key, seen, true)
	}
	return e
}
