// Package vfs is the filesystem's core, free of FUSE: what a mount does
// with files, directories and the storage, whatever carries the requests.
// Package fs adapts it to go-fuse; scripts/check-deps.sh fails the build
// if vfs imports go-fuse or fs.
//
// The core is moving here from fs piece by piece (the data-path issue,
// 13). So far:
//
//   - ReadAhead and Budget: a reader of one object version that fetches
//     ahead of a sequential reader in parallel ranged GETs, within a
//     memory budget shared by every reader of the mount.
//   - PartialLayout: which parts of a changed file a save copies on the
//     server from the version it was based on, and which it sends.
//   - Journal: the multipart uploads in progress, kept on disk so that the
//     next mount aborts those a crash left incomplete.
//   - Entry and its codec: what a directory knows of a child, read from a
//     listing or from an object's metadata (stored with s3fs's keys), and
//     written back; the name rules and the merging of listing pages; the
//     extended attributes' codec.
//   - DirCache and DirCaches: what is known of each directory's entries,
//     kept by path (not in the kernel's nodes, which it forgets), moved by
//     a rename and dropped by a removal; time comes from a Clock, so tests
//     move it on instead of sleeping past a TTL.
//   - Partial: a directory's one listing under way (DirCache.StartListing),
//     read from the storage page by page (Read, from a lookup's page when
//     it showed the directory), whose pages answer lookups before the
//     last one arrives.
//   - WriteBack: the files whose data is not in the bucket yet, saved again
//     in the background with a doubling delay, and once more at Close;
//     kept by the path each is saved under, which a rename moves, so that
//     a file the kernel forgot is still found by its name.
//   - Span and the read buffers' pool: a read hands the kernel the fetched
//     buffers themselves, which are recycled once it is done with them.
//   - Staging: the local copy of a file open for writing, which fetches
//     only the ranges it is asked for and saves only the parts that
//     changed (the others copied on the server from the version it was
//     made from), or streams a file written front to back while it is
//     written; Space bounds all copies of a mount; GetFull resumes broken
//     transfers.
//   - ReadProbe and LearnFrom: what one page of the keys that begin with a
//     name says of it, and of the directories below it, which
//     DirCaches.Learn keeps (at most 10,000 names a directory) to answer
//     the next lookups of a path without a request; SeedsFrom, the same
//     page as the start of those directories' listings.
//   - SaveMeta: a change of a file's metadata stored with a copy onto
//     itself, on the version it was meant for, telling this mount's own
//     lost answer from another program's replacement (ErrMetaReplaced).
//   - Inos: inode numbers derived from paths, kept by a node the kernel
//     forgot and looks up again, and by a renamed one.
//   - HeadAll and MarkerEntry: the metadata of a directory's entries read
//     with a HEAD each, many at once (a directory's from its marker).
//   - RenameTree: a directory renamed object by object on the server,
//     the originals deleted only once every copy is made.
//   - Finder: what a name no listing knows is, from one page of the keys
//     that begin with it and a HEAD (or, for a small file, a GET whose
//     bytes Bodies keeps).
//   - LinkTarget and RenamedEntry: a link's target, read from the version
//     its node stands for; what a file's entry says once renamed.
//   - Bodies: the bytes of small files that their lookups fetched with a
//     GET in place of a HEAD, for the read that follows.
//   - File and Files: what the mount knows of a file (attributes, open
//     handles, staging copy, unsaved changes) and what is done with it:
//     staged, written, saved at close (Save) or in the background after a
//     failure (WriteBack), revalidated at open, held while its object is
//     deleted or moved (Hold, HoldTree, RenameFile), and taken over by the
//     next node of its name when the kernel forgot it with data unsaved
//     (Adopt). A File reaches the adapter's node through Node: its key
//     while in the tree, its kind, and the kernel's cached attributes.
//   - Handle: an open file; its reads come from the staging copy, or from
//     the version it opened through a read-ahead and the data cache
//     (datacache), moving to a replaced object's new version only while
//     it has served nothing.
//   - Namespace: names made and removed (mkdir, mknod, symlink, unlink,
//     rmdir, a directory's metadata on its marker, an implicit directory
//     vanishing with its last child) and renames, each shown in the
//     directories' listings at once.
//
// Still in fs: passthrough (handing the kernel a data cache's whole
// copy), the walks of go-fuse's tree (a lookup's and a listing's use of
// the nodes the kernel holds, the parents an implicit directory's
// vanishing climbs) and the errno mapping.
// Whatever is keyed by path (listings, the retry queue, inode numbers)
// and whatever a file holds lives here.
//
// # Lock order
//
// A lock may be held while taking one listed after it, never the reverse;
// none but the first three is held across a request to the storage.
//
//  1. DirCache.LockFilling, by its caller across a batch of metadata
//     HEADs of one directory.
//  2. A File's io lock (activity.io), across its saves and fetches; one
//     at a time, except in a rename (the target's, then the source's)
//     and HoldTree (never waiting for one while holding another).
//  3. Staging.ops, across a copy's fetches and uploads; the File's lock
//     may be taken under it only by the Namer.
//  4. DirCaches → DirCache; ReadAhead → Budget.
//
// Leaves: a File's lock (never across a request), Staging.mu, Space,
// DirCache's lock, Budget, the WriteBack queue's lock (never held across
// a save), Partial's, Bodies'.
package vfs
