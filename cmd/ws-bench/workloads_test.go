package main

import (
	"strings"
	"testing"
)

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

func TestLsHugeRow(t *testing.T) {
	b := bench{data: quickDataset(), archive: newUntarArchive("")}
	var w workload
	for _, r := range b.workloads() {
		if r.ID == "ls200k" {
			w = r
		}
	}
	if !w.OptIn || !w.PeakRSS || w.WarmPrefix != "" || len(w.Objects()) != 20_000 {
		t.Errorf("ls200k: opt-in %v, peak RSS %v, warm %q, %d objects; want opt-in, peak RSS, no warming, 20,000 objects",
			w.OptIn, w.PeakRSS, w.WarmPrefix, len(w.Objects()))
	}
	if want := "ls -l, 20,000 entries, listing slower than --metadata-ttl 1s"; w.Title != want {
		t.Errorf("title = %q, want %q", w.Title, want)
	}
	args := mountWSTool(toolConfig{mountWS: "/nonexistent/mount-ws", slug: "o/w"}).args("MNT", mountMode{mountWSArgs: w.MountWSArgs})
	if got := strings.Join(args, " "); !strings.HasSuffix(got, " --metadata-ttl 1s o/w MNT") {
		t.Errorf("mount-ws command = %q, want --metadata-ttl 1s before the workspace", got)
	}
}
