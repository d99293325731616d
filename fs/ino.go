package fs

import (
	"hash/fnv"
	"sync"
)

// inoTable gives a node the inode number derived from its key, while no
// live node has that number. The kernel forgets inodes it does not use
// (memory pressure), and a node made again for the same name must show
// the same number: programs compare them (git's index, rsync, tar's
// hard-link detection, find -samefile), and posixtest's rename checks saw
// a renamed file change its number when the kernel had forgotten it in
// between. A number in use (a file renamed away from the name still holds
// it, or a hash collision) is not given twice: the node gets one of
// go-fuse's own, unique for the life of the mount, as before. A renamed
// node keeps its number, so the table remembers it for the new name
// (a bounded number of them), for the node made after a forget.
type inoTable struct {
	mu      sync.Mutex
	live    map[uint64]struct{} // numbers of live nodes given here; guarded by mu
	renamed map[string]uint64   // numbers of renamed nodes, by new key; guarded by mu
}

// maxRenamed bounds inoTable.renamed.
const maxRenamed = 1 << 16

// Derived numbers have bit 62 set and bit 63 clear: go-fuse numbers its
// own from 1<<63, and the root is 1.
const (
	inoDerived = 1 << 62
	inoMask    = inoDerived - 1
)

// take returns the number for a node about to be made for key, or 0 to
// let go-fuse choose one.
func (t *inoTable) take(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	ino := h.Sum64()&inoMask | inoDerived
	t.mu.Lock()
	defer t.mu.Unlock()
	if kept, ok := t.renamed[key]; ok {
		delete(t.renamed, key)
		if _, used := t.live[kept]; !used {
			ino = kept
		}
	}
	if _, used := t.live[ino]; used {
		return 0
	}
	if t.live == nil {
		t.live = make(map[uint64]struct{})
	}
	t.live[ino] = struct{}{}
	return ino
}

// release frees the number of a node the kernel forgot.
func (t *inoTable) release(ino uint64) {
	if ino&^inoMask != inoDerived {
		return // go-fuse's own, or the root's
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.live, ino)
}

// moved records that the node numbered ino is now named key.
func (t *inoTable) moved(key string, ino uint64) {
	if ino&^inoMask != inoDerived {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.renamed == nil {
		t.renamed = make(map[string]uint64)
	}
	if len(t.renamed) >= maxRenamed {
		for k := range t.renamed { // drop one, any
			delete(t.renamed, k)
			break
		}
	}
	t.renamed[key] = ino
}
