package fs

import (
	"sync/atomic"
)

// counters count the mount's events for Stats. They are atomics: they sit
// on the request path, where a lock would serialise unrelated requests.
type counters struct {
	metaHits, metaMisses atomic.Uint64
	passthroughOpens     atomic.Uint64 // handles given a whole copy to read
	forgotten            atomic.Uint64 // nodes the kernel forgot
}

// Stats is a snapshot of what the filesystem holds and has done, for
// metrics and `mount-ws status`.
type Stats struct {
	// PrefetchBytes is the read-ahead memory in use, PrefetchLimit its
	// budget (--prefetch-memory-mib).
	PrefetchBytes, PrefetchLimit int64
	// StagedBytes is the size of all staging files, StageLimit their
	// budget (--cache-size-mib).
	StagedBytes, StageLimit int64
	// Unsaved lists the files whose data is not in the bucket yet, by
	// path: a failed upload, or a change still being saved after its last
	// close.
	Unsaved []UnsavedFile
	// Saves and SaveFailures count uploads of a file's content or
	// metadata (retries included) by outcome.
	Saves, SaveFailures uint64
	// MetadataHits counts lookups answered from the directory cache,
	// MetadataMisses those that asked the storage.
	MetadataHits, MetadataMisses uint64
	// ReadAheadHits counts reads served from data already fetched,
	// ReadAheadMisses those that waited for the storage.
	ReadAheadHits, ReadAheadMisses uint64
	// DataCacheBytes is what the data cache holds, DataCacheLimit its
	// size (--data-cache-size-mib); both 0 without a data cache.
	// DataCacheHits counts blocks read from it, DataCacheMisses blocks
	// fetched from S3 into it.
	DataCacheBytes, DataCacheLimit int64
	DataCacheHits, DataCacheMisses uint64
	// PassthroughOpens counts opens handed a whole copy in the data cache
	// for the kernel to read directly (passthrough.go): on read-only
	// mounts, by root, on a kernel with passthrough (Linux 6.9).
	PassthroughOpens uint64
	// OpenHandles counts the file handles open now (the kernel releases
	// a handle shortly after its last close).
	OpenHandles int64
	// Forgotten counts the files and directories the kernel forgot (it
	// does so under memory pressure; a later lookup makes them anew).
	Forgotten uint64
	// RecentErrors are the last failed operations (not counting "no such
	// file"), oldest first.
	RecentErrors []RecentError
}

// UnsavedFile is a file with data not yet in the bucket.
type UnsavedFile struct {
	Path string
	// Failed: its last upload failed (close or fsync said EIO); Err says
	// why. Otherwise it is still being saved.
	Failed bool
	Err    error
}

// FailedUploads counts the unsaved files whose last upload failed.
func (s Stats) FailedUploads() int {
	n := 0
	for _, u := range s.Unsaved {
		if u.Failed {
			n++
		}
	}
	return n
}

// Stats returns a snapshot of the filesystem's state and counters.
func (f *FS) Stats() Stats {
	files := f.files.Counts()
	s := Stats{
		PrefetchLimit:   f.budget.Limit(),
		Saves:           files.Saves,
		SaveFailures:    files.SaveFailures,
		MetadataHits:    f.counts.metaHits.Load(),
		MetadataMisses:  f.counts.metaMisses.Load(),
		ReadAheadHits:   files.ReadAheadHits,
		ReadAheadMisses: files.ReadAheadMisses,
		OpenHandles:     files.OpenHandles,
		Forgotten:       f.counts.forgotten.Load(),
	}
	s.PrefetchBytes, _ = f.budget.InUse()
	if c := f.opts.DataCache; c != nil {
		s.DataCacheBytes, s.DataCacheLimit = c.Used()
		s.DataCacheHits, s.DataCacheMisses = files.DataCacheHits, files.DataCacheMisses
		s.PassthroughOpens = f.counts.passthroughOpens.Load()
	}
	s.RecentErrors = f.errs.latest()
	s.StagedBytes, s.StageLimit = f.space.Usage()

	for _, u := range f.files.Unsaved() {
		s.Unsaved = append(s.Unsaved, UnsavedFile{Path: u.Key, Failed: u.Failed, Err: u.Err})
	}
	return s
}
