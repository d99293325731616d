package fs

import (
	"strings"
	"syscall"
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
func (f *FS) Orphans() int { return len(f.files.OrphansUnder("")) }

// Known reports whether go-fuse's tree holds a node for path, that is,
// whether the kernel still knows it.
func (f *FS) Known(path string) bool {
	n := &f.root.Inode
	for _, name := range strings.Split(path, "/") {
		if n = n.GetChild(name); n == nil {
			return false
		}
	}
	return true
}

// Active reports whether go-fuse's tree holds a file node for path
// (known), and whether that node has an activity (see vfs.File), which
// only opens, changes and removals make.
func (f *FS) Active(path string) (active, known bool) {
	n := &f.root.Inode
	for _, name := range strings.Split(path, "/") {
		if n = n.GetChild(name); n == nil {
			return false, false
		}
	}
	fl, ok := n.Operations().(*file)
	if !ok {
		return false, false
	}
	return !fl.state.Idle(), true
}
