package main

import "testing"

func TestSelectedAndSeedObjects(t *testing.T) {
	extra := object{Key: "quick/huge/obj-000000"}
	rows := []workload{
		{ID: "ls"},
		{ID: "huge", OptIn: true, Objects: func() []object { return []object{extra} }},
	}
	d := quickDataset()
	base := len(d.objects())
	tests := []struct {
		name     string
		ids      []string
		wantHuge bool
	}{
		{"default leaves opt-in rows out", nil, false},
		{"named opt-in row runs", []string{"huge"}, true},
		{"others named", []string{"ls"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := selected(rows[1], tt.ids); got != tt.wantHuge {
				t.Errorf("selected(huge) = %v, want %v", got, tt.wantHuge)
			}
			objs := seedObjects(d, rows, tt.ids)
			seeded := len(objs) == base+1 && objs[base] == extra
			if seeded != tt.wantHuge || (!tt.wantHuge && len(objs) != base) {
				t.Errorf("seedObjects: %d objects, want the data set's %d and the row's: %v", len(objs), base, tt.wantHuge)
			}
		})
	}
	if !selected(rows[0], nil) {
		t.Error("selected(ls) = false with no ids, want true")
	}
}
