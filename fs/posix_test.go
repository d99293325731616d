package fs_test

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"

	"mount-ws/bucket"
	"mount-ws/fs"
	"mount-ws/internal/fusetest"
)

// posixUnsupported lists the posixtest entries that S3 or this filesystem
// cannot support, with the reason.
var posixUnsupported = map[string]string{
	"FcntlFlockLocksFile": "expects a second descriptor of the same process to conflict with the first one's POSIX lock, " +
		"which POSIX rules out (locks belong to the process); the kernel keeps this mount's locks, S3 having none to share, " +
		"and go-fuse's own run of the suite skips this entry on every filesystem",
	"Link":             "hard links: S3 cannot put one object under two keys, so link(2) answers EOPNOTSUPP, as on s3fs",
	"LinkUnlinkRename": "renames with link(2) and unlink(2); link answers EOPNOTSUPP, S3 having no hard links",
	"Tmpfile": "O_TMPFILE answers EOPNOTSUPP: such a file gets a name only through linkat(2), which would fail " +
		"(no hard links) after the caller wrote it, instead of at open, where callers fall back to a named file",
}

// TestPosix runs every entry of go-fuse's POSIX suite against a mount of a
// fresh workspace.
func TestPosix(t *testing.T) {
	for name := range maps.Keys(posixUnsupported) {
		if posixtest.All[name] == nil {
			t.Errorf("posixUnsupported: %s is not in posixtest.All", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(posixtest.All)) {
		t.Run(name, func(t *testing.T) {
			if why, ok := posixUnsupported[name]; ok {
				t.Skip(why)
			}
			f := fs.New(emptyWorkspace(t), fs.Options{CacheDir: t.TempDir()})
			mnt := fusetest.MountWith(t, f, fs.MountConfig{FsName: "mount-ws-test", Xattrs: true})
			posixtest.All[name](t, mnt)
		})
	}
}

// emptyWorkspace returns the bucket of workspace(t) with what an earlier run
// of the same test (go test -count) left in it deleted.
func emptyWorkspace(t *testing.T) *bucket.Bucket {
	t.Helper()
	b, _ := workspace(t)
	var keys []string
	err := b.ListRecursive(context.Background(), "", func(o bucket.Object) error {
		keys = append(keys, o.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		deleteRaw(t, b, k)
	}
	return b
}
