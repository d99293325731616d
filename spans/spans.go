// Package spans keeps a set of byte ranges, such as the parts of a file
// that are present in a local copy.
package spans

// Span is the byte range [Off, End).
type Span struct {
	Off, End int64
}

// Set is a set of bytes, kept as sorted, disjoint, non-adjacent spans.
// The zero value is empty.
type Set struct {
	s []Span
}

// Add adds [off, end).
func (t *Set) Add(off, end int64) {
	if off >= end {
		return
	}
	// Spans wholly before and wholly after [off, end) stay; those that
	// overlap or touch it merge into one.
	i := 0
	for i < len(t.s) && t.s[i].End < off {
		i++
	}
	j := i
	for j < len(t.s) && t.s[j].Off <= end {
		off = min(off, t.s[j].Off)
		end = max(end, t.s[j].End)
		j++
	}
	merged := append([]Span{{off, end}}, t.s[j:]...)
	t.s = append(t.s[:i], merged...)
}

// Clip removes every byte at or past size.
func (t *Set) Clip(size int64) {
	for i, sp := range t.s {
		if sp.End <= size {
			continue
		}
		if sp.Off >= size {
			t.s = t.s[:i]
		} else {
			t.s[i].End = size
			t.s = t.s[:i+1]
		}
		return
	}
}

// Missing returns the parts of [off, end) not in the set, in order.
func (t *Set) Missing(off, end int64) []Span {
	var out []Span
	for _, sp := range t.s {
		if off >= end {
			break
		}
		if sp.End <= off {
			continue
		}
		if sp.Off >= end {
			break
		}
		if sp.Off > off {
			out = append(out, Span{off, sp.Off})
		}
		off = sp.End
	}
	if off < end {
		out = append(out, Span{off, end})
	}
	return out
}

// Covers reports whether every byte of [off, end) is in the set.
func (t *Set) Covers(off, end int64) bool {
	return off >= end || len(t.Missing(off, end)) == 0
}

// Intersects reports whether any byte of [off, end) is in the set.
func (t *Set) Intersects(off, end int64) bool {
	if off >= end {
		return false
	}
	m := t.Missing(off, end)
	return len(m) != 1 || m[0] != Span{off, end}
}

// Spans returns the spans of the set, in order.
func (t *Set) Spans() []Span {
	return append([]Span(nil), t.s...)
}

// Len returns the number of bytes in the set.
func (t *Set) Len() int64 {
	var n int64
	for _, sp := range t.s {
		n += sp.End - sp.Off
	}
	return n
}
