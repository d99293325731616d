package vfs

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestListingActsAsMap: a listing answers as a map of its names would,
// whatever mix of changes follows the listing (names of the listing and
// new ones, set, removed and set again), and a nil listing holds nothing.
func TestListingActsAsMap(t *testing.T) {
	var none *listing
	none.set("a", Entry{})
	none.remove("a")
	if _, ok := none.get("a"); ok || none.len() != 0 {
		t.Errorf("a nil listing found a name or counted %d", none.len())
	}
	none.each(func(string, Entry) { t.Error("a nil listing has a name") })

	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 1))
		model := make(map[string]Entry)
		for i := range r.IntN(50) {
			model[fmt.Sprintf("n%03d", r.IntN(100))] = Entry{Size: int64(i)}
		}
		l := newListing(maps.Clone(model))
		for op := range 300 {
			name := fmt.Sprintf("n%03d", r.IntN(120)) // some never listed
			switch r.IntN(3) {
			case 0, 1:
				e := Entry{Size: int64(1000 + op), Dir: r.IntN(2) == 0}
				l.set(name, e)
				model[name] = e
			case 2:
				l.remove(name)
				delete(model, name)
			}
			want, wantOK := model[name]
			if got, ok := l.get(name); ok != wantOK || got != want {
				t.Fatalf("seed %d op %d: get(%s) = %v %v, want %v %v", seed, op, name, got, ok, want, wantOK)
			}
			if l.len() != len(model) {
				t.Fatalf("seed %d op %d: len %d, want %d", seed, op, l.len(), len(model))
			}
		}
		seen := make(map[string]Entry)
		l.each(func(name string, e Entry) {
			if _, twice := seen[name]; twice {
				t.Errorf("seed %d: each gave %s twice", seed, name)
			}
			seen[name] = e
		})
		if !maps.Equal(seen, model) {
			t.Errorf("seed %d: each gave %v, want %v", seed, seen, model)
		}
	}
}
