package spans

import (
	"testing"
)

// model is the set as one bool per byte, for sizes a test can afford.
type model []bool

func (m model) missing(off, end int64) []Span {
	var out []Span
	for i := off; i < end; i++ {
		if m[i] {
			continue
		}
		if n := len(out); n > 0 && out[n-1].End == i {
			out[n-1].End++
		} else {
			out = append(out, Span{i, i + 1})
		}
	}
	return out
}

func TestSet(t *testing.T) {
	var s Set
	s.Add(10, 20)
	s.Add(30, 40)
	s.Add(20, 25) // touches: merges
	if got := s.Spans(); len(got) != 2 || got[0] != (Span{10, 25}) || got[1] != (Span{30, 40}) {
		t.Fatalf("spans %v", got)
	}
	for _, c := range []struct {
		off, end int64
		want     []Span
	}{
		{0, 50, []Span{{0, 10}, {25, 30}, {40, 50}}},
		{12, 22, nil},
		{24, 31, []Span{{25, 30}}},
		{40, 40, nil},
	} {
		got := s.Missing(c.off, c.end)
		if len(got) != len(c.want) {
			t.Errorf("Missing(%d, %d) = %v, want %v", c.off, c.end, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("Missing(%d, %d) = %v, want %v", c.off, c.end, got, c.want)
			}
		}
	}
	if !s.Covers(10, 25) || s.Covers(10, 26) || !s.Intersects(24, 31) || s.Intersects(25, 30) {
		t.Error("Covers or Intersects wrong")
	}
	s.Clip(35)
	if got := s.Spans(); len(got) != 2 || got[1] != (Span{30, 35}) {
		t.Errorf("after Clip(35): %v", got)
	}
	s.Clip(5)
	if got := s.Spans(); len(got) != 0 {
		t.Errorf("after Clip(5): %v", got)
	}
}

// FuzzSet checks the set against one bool per byte, over random adds,
// clips and queries.
func FuzzSet(f *testing.F) {
	f.Add([]byte{0, 3, 9, 0, 5, 20, 1, 12, 2, 2, 40})
	f.Add([]byte{0, 0, 63, 1, 10, 0, 1, 2, 2, 4, 9})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const size = 64
		var s Set
		m := make(model, size)
		for len(ops) >= 3 {
			op, a, b := ops[0]%3, int64(ops[1]%size), int64(ops[2]%size)
			ops = ops[3:]
			if a > b {
				a, b = b, a
			}
			switch op {
			case 0:
				s.Add(a, b)
				for i := a; i < b; i++ {
					m[i] = true
				}
			case 1:
				s.Clip(a)
				for i := a; i < size; i++ {
					m[i] = false
				}
			case 2:
				got, want := s.Missing(a, b), m.missing(a, b)
				if len(got) != len(want) {
					t.Fatalf("Missing(%d, %d) = %v, want %v", a, b, got, want)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("Missing(%d, %d) = %v, want %v", a, b, got, want)
					}
				}
				covered, any := true, false
				for i := a; i < b; i++ {
					covered = covered && m[i]
					any = any || m[i]
				}
				if s.Covers(a, b) != covered || s.Intersects(a, b) != any {
					t.Fatalf("[%d, %d): Covers %v Intersects %v, want %v %v", a, b, s.Covers(a, b), s.Intersects(a, b), covered, any)
				}
			}
		}
		// The spans stay sorted, disjoint and non-adjacent.
		sp := s.Spans()
		for i := range sp {
			if sp[i].Off >= sp[i].End || (i > 0 && sp[i-1].End >= sp[i].Off) {
				t.Fatalf("malformed spans %v", sp)
			}
		}
	})
}
