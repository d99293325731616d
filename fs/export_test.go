package fs

import (
	"strings"
	"syscall"
	"time"
)

// ForgetEntry tells the kernel to drop its entry for path (a/b, relative
// to the root) and the unused entries under it, as memory pressure would:
// the kernel then forgets their inodes, and the next lookup makes new
// nodes. Unlike drop_caches, it does not depend on the kernel's reclaim.
func (f *FS) ForgetEntry(path string) syscall.Errno {
	parent := &f.root.Inode
	dirs := strings.Split(path, "/")
	name := dirs[len(dirs)-1]
	for _, d := range dirs[:len(dirs)-1] {
		if parent = parent.GetChild(d); parent == nil {
			return syscall.ENOENT
		}
	}
	return parent.NotifyEntry(name)
}

// Orphans counts the files whose upload is queued and whose node the
// kernel forgot.
func (f *FS) Orphans() int { return len(f.orphans()) }

// ExpireListings ages every cached listing past the TTL, as waiting that
// long would, without a test depending on how long its own steps take.
func (f *FS) ExpireListings() {
	f.dirs.mu.Lock()
	caches := make([]*dirCache, 0, len(f.dirs.byKey))
	for _, c := range f.dirs.byKey {
		caches = append(caches, c)
	}
	f.dirs.mu.Unlock()
	for _, c := range caches {
		c.mu.Lock()
		c.listedAt = time.Time{}
		c.mu.Unlock()
	}
}
