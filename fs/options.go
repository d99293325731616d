package fs

import (
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"mount-ws/datacache"
	"mount-ws/vfs"
)

// Defaults for Options fields left zero.
const (
	// DefaultMetadataTTL bounds how stale a listing or attribute may be when
	// another client changes the bucket. Ten seconds keeps "ls -l" and a
	// training loop's repeated stat() calls to one LIST per directory every
	// ten seconds, while changes made elsewhere show up well within the
	// minute that gcsfuse and goofys take (mountpoint-s3 revalidates every
	// second, at one request per stat). Changes made through this mount are
	// visible at once.
	DefaultMetadataTTL = 10 * time.Second
	// DefaultNegativeTTL is short: a file another client is about to create
	// should not stay invisible for long.
	DefaultNegativeTTL = time.Second
	// DefaultPrefetchMemory caps the bytes held by all read-ahead buffers.
	DefaultPrefetchMemory = 512 << 20
	// DefaultMetadataHeadLimit: directories with at most this many
	// entries show every file's stored mode, owner and mtime, read with
	// one HEAD per entry (once per object version) when a program first
	// stats one of them; larger ones show what a listing gives, so that
	// "ls -l" of them costs LIST requests only.
	DefaultMetadataHeadLimit = 1000
	// DefaultCacheLimit caps the staging files of files being written.
	DefaultCacheLimit = 10 << 30
	// DefaultPartSize: files up to this size are uploaded with one PUT,
	// larger ones in parts of this size, DefaultUploadConcurrency at once.
	DefaultPartSize          = 16 << 20
	DefaultUploadConcurrency = 8
	// DefaultFileMode and DefaultDirMode are the permissions of objects
	// that carry none of their own.
	DefaultFileMode = 0o644
	DefaultDirMode  = 0o755
	// DefaultRetryInterval is when a file whose upload failed is first
	// uploaded again in the background (then at doubling intervals; see
	// vfs.WriteBack).
	DefaultRetryInterval = 15 * time.Second
)

// Options tune the filesystem. The zero value is usable.
type Options struct {
	UID, GID          uint32
	FileMode, DirMode uint32 // permission bits only
	// MetadataTTL and NegativeTTL: zero means the default, a negative
	// value no caching at all.
	MetadataTTL time.Duration
	NegativeTTL time.Duration
	// MetadataHeadLimit: see DefaultMetadataHeadLimit; negative turns the
	// HEADs off.
	MetadataHeadLimit int
	// ReadOnly answers EROFS to every modification.
	ReadOnly bool
	// PrefetchMemory caps the read-ahead buffers of all open files.
	PrefetchMemory int64
	// CacheDir holds the staging files of files being written (unlinked
	// at once, so a crash leaves none) and the journal of multipart
	// uploads in progress. Writing needs it; default: a directory under
	// the system's temporary directory.
	CacheDir string
	// CacheLimit caps the bytes staged at once; a write past it fails
	// with ENOSPC.
	CacheLimit int64
	// DataCache, when set, keeps the blocks that reads fetch on local
	// disk, and serves reads of them from there.
	DataCache *datacache.Cache
	// PartSize and UploadConcurrency shape multipart uploads.
	PartSize          int64
	UploadConcurrency int
	// RetryInterval: see DefaultRetryInterval.
	RetryInterval time.Duration
	Logger        *slog.Logger
	// Clock tells the time to the directory caches, against MetadataTTL
	// and NegativeTTL, and to the write-back queue, against RetryInterval;
	// nil means time.Now. A test moves it on instead of sleeping past a
	// TTL.
	Clock vfs.Clock
}

func (o Options) withDefaults() Options {
	if o.FileMode == 0 {
		o.FileMode = DefaultFileMode
	}
	if o.DirMode == 0 {
		o.DirMode = DefaultDirMode
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	o.MetadataTTL = ttlOrDefault(o.MetadataTTL, DefaultMetadataTTL)
	o.NegativeTTL = ttlOrDefault(o.NegativeTTL, DefaultNegativeTTL)
	if o.PrefetchMemory <= 0 {
		o.PrefetchMemory = DefaultPrefetchMemory
	}
	if o.MetadataHeadLimit == 0 {
		o.MetadataHeadLimit = DefaultMetadataHeadLimit
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(os.TempDir(), "mount-ws-cache")
	}
	if o.CacheLimit <= 0 {
		o.CacheLimit = DefaultCacheLimit
	}
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.UploadConcurrency <= 0 {
		o.UploadConcurrency = DefaultUploadConcurrency
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

func ttlOrDefault(ttl, def time.Duration) time.Duration {
	switch {
	case ttl == 0:
		return def
	case ttl < 0:
		return 0
	}
	return ttl
}
