package vfs

import (
	"slices"
	"testing"

	"mount-ws/spans"
)

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
)

var s3Limits = PartLimits{Min: 5 * mib, Max: 5 * gib, Count: 10000}

func TestPartialLayout(t *testing.T) {
	for _, tc := range []struct {
		name           string
		size, baseSize int64
		changed        []spans.Span
		want           []SavePart
	}{
		{"a line appended to 1 GiB: one copy, the line sent", gib + 21, gib, nil,
			[]SavePart{{0, gib, true}, {gib, 21, false}}},
		{"one byte in the middle: 5 MiB sent", gib, gib, []spans.Span{{Off: gib / 2, End: gib/2 + 1}},
			[]SavePart{{0, gib / 2, true}, {gib / 2, 5 * mib, false}, {gib/2 + 5*mib, gib/2 - 5*mib, true}}},
		{"one byte at the start", 100 * mib, 100 * mib, []spans.Span{{Off: 0, End: 1}},
			[]SavePart{{0, 5 * mib, false}, {5 * mib, 95 * mib, true}}},
		{"one byte near the end: the short rest of the copy is the last part", 100 * mib, 100 * mib, []spans.Span{{Off: 99 * mib, End: 99*mib + 1}},
			[]SavePart{{0, 99 * mib, true}, {99 * mib, mib, false}}},
		{"a gap too short to copy is sent", 100 * mib, 100 * mib, []spans.Span{{Off: 10 * mib, End: 16 * mib}, {Off: 18 * mib, End: 24 * mib}},
			[]SavePart{{0, 10 * mib, true}, {10 * mib, 14 * mib, false}, {24 * mib, 76 * mib, true}}},
		{"a short copy before a change is sent", 100 * mib, 100 * mib, []spans.Span{{Off: 2 * mib, End: 3 * mib}},
			[]SavePart{{0, 5 * mib, false}, {5 * mib, 95 * mib, true}}},
		{"grown by 40 MiB: sent in parts, the short last one too", 20*mib + 40*mib, 20 * mib, nil,
			[]SavePart{{0, 20 * mib, true}, {20 * mib, 16 * mib, false}, {36 * mib, 16 * mib, false}, {52 * mib, 8 * mib, false}}},
		{"a 40 MiB change: the short last piece joins the one before", 100 * mib, 100 * mib, []spans.Span{{Off: 10 * mib, End: 45 * mib}},
			[]SavePart{{0, 10 * mib, true}, {10 * mib, 16 * mib, false}, {26 * mib, 19 * mib, false}, {45 * mib, 55 * mib, true}}},
		{"truncated: nothing past the new size", 50 * mib, 100 * mib, []spans.Span{{Off: 60 * mib, End: 70 * mib}},
			[]SavePart{{0, 50 * mib, true}}},
		{"12 GiB unchanged but the end: copies of at most 5 GiB", 12*gib + 1, 12 * gib, nil,
			[]SavePart{{0, 4 * gib, true}, {4 * gib, 4 * gib, true}, {8 * gib, 4 * gib, true}, {12 * gib, 1, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := PartialLayout(tc.size, tc.baseSize, tc.changed, 16*mib, s3Limits)
			if !ok || !slices.Equal(got, tc.want) {
				t.Errorf("got %v (ok %v)\nwant %v", got, ok, tc.want)
			}
			checkLayout(t, got, tc.size, tc.baseSize, tc.changed, 16*mib, s3Limits)
		})
	}
}

// checkLayout holds what every layout must be: the parts cover the file in
// order, within the limits, and copy only unchanged bytes of the base; and
// it sends little more than the changes.
func checkLayout(t *testing.T, parts []SavePart, size, baseSize int64, changed []spans.Span, partSize int64, lim PartLimits) {
	t.Helper()
	var set spans.Set
	for _, c := range changed {
		set.Add(c.Off, c.End)
	}
	pos, sent := int64(0), int64(0)
	for i, p := range parts {
		last := i == len(parts)-1
		switch {
		case p.Off != pos:
			t.Fatalf("part %d at %d, want %d: %v", i, p.Off, pos, parts)
		case p.N <= 0 || p.N > lim.Max || (!last && p.N < lim.Min):
			t.Fatalf("part %d of %d bytes, limits %+v: %v", i, p.N, lim, parts)
		case p.Copied && (p.Off+p.N > baseSize || set.Intersects(p.Off, p.Off+p.N)):
			t.Fatalf("part %d copies bytes the base does not have unchanged: %v", i, parts)
		}
		if !p.Copied {
			sent += p.N
		}
		pos += p.N
	}
	if pos != size {
		t.Fatalf("parts end at %d, want %d: %v", pos, size, parts)
	}
	must := max(size-baseSize, 0)
	for _, c := range changed {
		must += max(min(c.End, baseSize, size)-c.Off, 0)
	}
	if slack := int64(len(changed)+2) * 2 * max(lim.Min, partSize); sent > must+slack {
		t.Fatalf("sent %d bytes for %d changed: %v", sent, must, parts)
	}
}

// FuzzPartialLayout: any change of any file gets a valid layout (small
// limits, so that every rule is reached).
func FuzzPartialLayout(f *testing.F) {
	f.Add(int64(100), int64(90), []byte{10, 3, 40, 1})
	f.Add(int64(7), int64(200), []byte{0, 1})
	f.Add(int64(500), int64(500), []byte{})
	f.Fuzz(func(t *testing.T, size, baseSize int64, raw []byte) {
		if size < 0 || size > 1<<16 || baseSize < 0 || baseSize > 1<<16 {
			return
		}
		lim := PartLimits{Min: 5, Max: 40, Count: 1 << 20}
		var set spans.Set
		pos := int64(0)
		for i := 0; i+1 < len(raw); i += 2 {
			off := pos + int64(raw[i])
			set.Add(off, off+int64(raw[i+1])+1)
			pos = off + int64(raw[i+1]) + 1
		}
		changed := set.Spans()
		parts, ok := PartialLayout(size, baseSize, changed, 16, lim)
		if !ok {
			t.Fatalf("no layout within %d parts", lim.Count)
		}
		checkLayout(t, parts, size, baseSize, changed, 16, lim)
	})
}
