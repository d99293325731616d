// Package fs presents a workspace's S3 prefix as a FUSE filesystem, built on
// go-fuse v2 (imported as fusefs). It sees the bucket only through the small
// Bucket interface declared here, with keys relative to the workspace prefix.
//
// # Namespace
//
// A directory exists when a marker object "dir/" exists or when any key lies
// below "dir/" (an implicit directory). When both a file "x" and keys under
// "x/" exist, the directory wins and the file is hidden. Keys that cannot be
// a file name (empty segments from "//", "." or "..", names over 255 bytes)
// are skipped. Each such key is logged once.
//
// # Caching
//
// A directory keeps its last listing for Options.MetadataTTL from its last
// page, and at least as long as reading it took (vfs.DirCache: by path, so
// a node the kernel forgot and looks up again finds it): lookups of names
// in it, and the attributes of READDIRPLUS, are answered from it, so
// "ls -l" costs LIST requests only. Lookups in a directory not listed
// recently ask S3 directly: one LIST of the keys that begin with the
// name's key, then a HEAD of the file, or of the directory's marker if the
// LIST shows one (vfs.Finder); a file of up to 128 KiB gets a GET instead,
// whose bytes serve the read that follows (vfs.Bodies). What that LIST shows of the directories
// below is kept (vfs.DirCaches.Learn) and answers the next lookups of a
// path, and starts those directories' listings (vfs.Seed). A name found
// missing is remembered for Options.NegativeTTL. The
// kernel's entry and attribute timeouts match these TTLs. A file's pages stay
// in the kernel's cache across opens for as long as its ETag is unchanged.
//
// # Reads
//
// Each open file (vfs.Handle) has a reader that detects sequential access
// and prefetches with parallel ranged GETs in a window that doubles up to
// a cap; random reads fetch only the aligned block they need. All
// prefetch buffers of the mount share one memory budget
// (Options.PrefetchMemory). Every GET carries If-Match with the ETag seen
// at open, so a file replaced in the bucket while open fails with ESTALE
// instead of returning a mix of two versions.
//
// With a data cache (Options.DataCache), what reads fetch is kept on local
// disk; on a read-only mount, a file whose data the cache holds whole is
// handed to the kernel to read directly (passthrough.go).
//
// # Writes
//
// A file open for writing has a staging copy in Options.CacheDir
// (vfs.Staging), shared by all its handles; close and fsync upload it
// (vfs.Files.Save) and fail with EIO if that fails, keeping the data for
// a retry. A file written front to back from empty is uploaded part by
// part while it is written. What a file holds and how it is saved is
// vfs.File's and vfs.Files'; a file node here stands for a vfs.File,
// which outlives the node when the kernel forgets it with data unsaved.
// Multipart uploads in progress are recorded (vfs.Journal) so that Recover
// aborts those a crash left behind. Mode, owner and mtime live in object
// metadata under s3fs's keys (vfs/meta.go); renames copy, then delete
// (vfs.Namespace).
//
// # Errors
//
// Errors become errno values in one place (errno.go): not found → ENOENT,
// access denied → EACCES, a changed object → ESTALE, a cancelled request →
// EINTR, anything else (S3 unreachable, no valid credentials) → EIO.
//
// # Lock order
//
// A lock may be held while taking one listed after it, never the reverse.
//
//  1. A directory's vfs.DirCache LockFilling, never under another lock;
//     held across its metadata HEADs. (Its listing is not a lock: the one
//     lister of a directory, vfs.DirCache.StartListing, holds no lock
//     across its LISTs; other callers wait for its pages or its end.)
//  2. A file's io lock (vfs.File's activity.io): held across the file's
//     S3 requests and upload waits. One at a time, except in rename (the
//     target's, then the source's: the kernel's directory locks keep
//     renames from crossing) and vfs.Files.HoldTree (never
//     waiting while holding one).
//  3. FS.passed's lock (the files passed through), across one open's
//     decision; a vfs.File's lock under it.
//  4. A vfs.File's lock, dir.mu or a handle's mu, never one under
//     another, nor two at once, nor across a request or a wait for
//     another goroutine.
//  5. In vfs: DirCaches → DirCache; ReadAhead → Budget; a Staging's ops,
//     held across its fetches and uploads (taken under a file's io lock,
//     or alone by a read that fetches), then the vfs.File's lock, which
//     only its Namer takes.
//
// Leaves, under anything: DirCache's own lock, Budget, the write-back
// queue's lock (vfs.WriteBack: never held across a save), a Staging's mu
// (its getters), vfs.Space, errLog, FS.bgMu, and go-fuse's Inode locks
// (Path, Parent, GetChild).
//
// Kernel notifications: NotifyContent(-1, 0) only drops cached attributes
// and may be sent under a file's io lock. NotifyEntry needs the lock of the parent
// directory in the kernel, which a request waiting for one of ours may
// hold (an rmdir or rename racing an unlink): it is sent from
// FS.background, with no lock held, and waited for only briefly.
package fs
