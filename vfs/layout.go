package vfs

import "mount-ws/spans"

// SavePart is one part of a partial save: the bytes [Off, Off+N) of the
// file, copied on the server from its base version or sent.
type SavePart struct {
	Off, N int64
	Copied bool
}

// PartLimits are the multipart limits of the storage: every part but the
// last at least Min bytes, none over Max, at most Count parts.
type PartLimits struct {
	Min, Max, Count int64
}

// layoutSeg is a run of bytes that is sent or copied as a whole.
type layoutSeg struct {
	off, end int64
	send     bool
}

// PartialLayout lays out the save of a file of size bytes whose first
// baseSize bytes are its base version's except where changed: the changed
// ranges (and everything past baseSize) are sent, in parts of partSize;
// the unchanged ranges between them are copied on the server, in as few
// parts as lim allows (a 1 GiB file with a line appended: one copy and one
// small send). A change is widened to lim.Min, the smallest part, and an
// unchanged range too short to be a part of its own is sent with its
// neighbours. ok is false when the layout needs more than lim.Count parts.
func PartialLayout(size, baseSize int64, changed []spans.Span, partSize int64, lim PartLimits) (parts []SavePart, ok bool) {
	segs := normalize(segments(size, min(baseSize, size), changed), lim.Min)
	for i, s := range segs {
		if !s.send {
			// As few copies as the largest part allows, of equal size.
			k := ceilDiv(s.end-s.off, lim.Max)
			for j := range k {
				lo, hi := s.off+(s.end-s.off)*j/k, s.off+(s.end-s.off)*(j+1)/k
				parts = append(parts, SavePart{lo, hi - lo, true})
			}
			continue
		}
		for off := s.off; off < s.end; off += partSize {
			n := min(partSize, s.end-off)
			// A short last piece that is not the file's last part goes
			// with the piece before it.
			if last := len(parts) - 1; n < lim.Min && i < len(segs)-1 && off > s.off && !parts[last].Copied {
				parts[last].N += n
				continue
			}
			parts = append(parts, SavePart{off, n, false})
		}
	}
	return parts, int64(len(parts)) <= lim.Count
}

// segments splits [0, size) into runs to send (changed, or past baseSize)
// and runs to copy, in order, adjacent runs of a kind merged.
func segments(size, baseSize int64, changed []spans.Span) []layoutSeg {
	var segs []layoutSeg
	add := func(off, end int64, send bool) {
		if off >= end {
			return
		}
		if n := len(segs); n > 0 && segs[n-1].send == send {
			segs[n-1].end = end
			return
		}
		segs = append(segs, layoutSeg{off, end, send})
	}
	pos := int64(0)
	for _, c := range changed {
		lo, hi := max(c.Off, pos), min(c.End, baseSize)
		if lo >= hi {
			continue
		}
		add(pos, lo, false)
		add(lo, hi, true)
		pos = hi
	}
	add(pos, baseSize, false)
	add(max(pos, baseSize), size, true)
	return segs
}

// normalize makes every run but the last at least minPart bytes: a short
// run to copy is sent instead, and a short run to send takes bytes from
// the run to copy after it (all of them when what would be left is
// short itself).
func normalize(segs []layoutSeg, minPart int64) []layoutSeg {
	for i := 0; i < len(segs)-1; {
		s := &segs[i]
		switch {
		case s.end-s.off >= minPart:
			i++
			continue
		case !s.send:
			s.send = true
		default:
			next := &segs[i+1] // a run to copy: runs alternate
			if rest := next.end - (s.off + minPart); rest > 0 && (rest >= minPart || i+1 == len(segs)-1) {
				s.end, next.off = s.off+minPart, s.off+minPart
				i++
				continue
			}
			next.send = true
		}
		segs = mergeSegs(segs)
		i = max(i-1, 0) // the run before may have grown into this one
	}
	return segs
}

// mergeSegs joins adjacent runs of the same kind.
func mergeSegs(segs []layoutSeg) []layoutSeg {
	out := segs[:0]
	for _, s := range segs {
		if n := len(out); n > 0 && out[n-1].send == s.send {
			out[n-1].end = s.end
			continue
		}
		out = append(out, s)
	}
	return out
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
