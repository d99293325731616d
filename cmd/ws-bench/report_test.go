package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"mount-ws/internal/detdata"
	"mount-ws/internal/wsstack"
)

func TestParseFioIOPS(t *testing.T) {
	const job = `{"fio version": "fio-3.33", "jobs": [{"jobname": "r", "error": 0, "read": {"io_bytes": 40960, "iops": 1234.5}}]}`
	tests := []struct {
		name    string
		out     string
		want    float64
		wantErr bool
	}{
		{"plain", job, 1234.5, false},
		{"warning first", "fio: file hash not empty on exit\n" + job, 1234.5, false},
		{"job error", `{"jobs": [{"error": 5, "read": {"iops": 0}}]}`, 0, true},
		{"no jobs", `{"jobs": []}`, 0, true},
		{"not json", "fio: failed to open file\n", 0, true},
		{"truncated", `{"jobs": [{"read": {"iops"`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFioIOPS([]byte(tt.out))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseFioIOPS = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func FuzzParseFioIOPS(f *testing.F) {
	f.Add([]byte(`{"jobs": [{"read": {"iops": 1}}]}`))
	f.Add([]byte("junk {"))
	f.Fuzz(func(t *testing.T, b []byte) {
		parseFioIOPS(b) // must not panic
	})
}

func TestParseVmRSS(t *testing.T) {
	status := "Name:\tmount-ws\nVmPeak:\t  900000 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n"
	if got, ok := parseVmRSS([]byte(status)); !ok || got != 51234 {
		t.Errorf("parseVmRSS = %d, %v; want 51234, true", got, ok)
	}
	if _, ok := parseVmRSS([]byte("Name:\tzombie\n")); ok {
		t.Error("parseVmRSS found VmRSS in a status without one")
	}
}

func TestRatiosAndCells(t *testing.T) {
	rate := row{Unit: "MiB/s", Results: map[string]*result{
		sdkName:    {Value: 1000},
		"mount-ws": {Value: 900},
		"s3fs":     {Error: "boom"},
	}}
	rate.setRatios()
	if got := rate.cell("mount-ws"); got != "900 (0.90×)" {
		t.Errorf("rate cell = %q", got)
	}
	if got := rate.cell("s3fs"); got != "failed" {
		t.Errorf("failed cell = %q", got)
	}
	if got := rate.cell("rclone"); got != "–" {
		t.Errorf("missing cell = %q", got)
	}
	// For times the ratio is SDK/tool: twice as slow is 0.50×.
	tm := row{Unit: "s", LowerIsBetter: true, Results: map[string]*result{
		sdkName:    {Value: 0.5},
		"mount-ws": {Value: 1},
	}}
	tm.setRatios()
	if got := tm.cell("mount-ws"); got != "1.000 s (0.50×)" {
		t.Errorf("time cell = %q", got)
	}
}

func TestBest(t *testing.T) {
	slow := &result{Value: 2, PeakRSSKiB: 10}
	fast := &result{Value: 1, PeakRSSKiB: 5}
	if got := best(&result{Value: 2, PeakRSSKiB: 10}, &result{Value: 1, PeakRSSKiB: 5}, true); got.Value != 1 || got.PeakRSSKiB != 10 {
		t.Errorf("best time = %+v; want value 1, peak RSS of both runs", got)
	}
	if got := best(slow, fast, false); got.Value != 2 {
		t.Errorf("best rate = %+v; want 2", got)
	}
	if got := best(fast, &result{Error: "x"}, false); got.Error == "" {
		t.Error("a failed run was hidden by a good one")
	}
}

func TestFormatRequests(t *testing.T) {
	got := formatRequests(map[wsstack.Op]uint64{wsstack.OpGet: 3, wsstack.OpList: 1, wsstack.OpPut: 2, wsstack.OpHead: 0})
	if want := "3/0/1 + PUT 2"; got != want {
		t.Errorf("formatRequests = %q, want %q", got, want)
	}
}

func TestMarkdownTable(t *testing.T) {
	var b bytes.Buffer
	table{header: []string{"a", "b|c"}, rows: [][]string{{"1", "2"}}}.markdown(&b)
	want := "| a | b\\|c |\n|---|---|\n| 1 | 2 |\n"
	if b.String() != want {
		t.Errorf("markdown:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestTextTableAligns(t *testing.T) {
	var b bytes.Buffer
	table{header: []string{"x", "y"}, rows: [][]string{{"long cell ×", "1"}}}.text(&b)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || strings.Index(lines[0], "y") != strings.Index(lines[2], "1")-1 {
		t.Errorf("columns not aligned:\n%s", b.String())
	}
}

func TestNames(t *testing.T) {
	for n, want := range map[int64]string{1 << 30: "1 GiB", 256 << 20: "256 MiB", 16 << 10: "16 KiB", 100: "100 B"} {
		if got := sizeName(n); got != want {
			t.Errorf("sizeName(%d) = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int]string{500: "500", 2000: "2,000", 20000: "20,000", 1234567: "1,234,567"} {
		if got := countName(n); got != want {
			t.Errorf("countName(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestLineCounter(t *testing.T) {
	var c lineCounter
	c.Write([]byte("a\nb\n"))
	c.Write([]byte("c"))
	c.Write([]byte("\n"))
	if c != 3 {
		t.Errorf("lines = %d, want 3", c)
	}
}

func TestDatasetLayout(t *testing.T) {
	d := quickDataset()
	objs := d.objects()
	if want := 1 + d.ParCount + d.FlatCount + d.TreeCount + d.SmallCount + d.CatCount; len(objs) != want {
		t.Fatalf("%d objects, want %d", len(objs), want)
	}
	dirs := map[string]bool{}
	keys := map[string]bool{}
	for _, o := range objs {
		if keys[o.Key] {
			t.Fatalf("duplicate key %s", o.Key)
		}
		keys[o.Key] = true
		if rest, ok := strings.CutPrefix(o.Key, d.treeDir()+"/"); ok {
			dir, _, _ := strings.Cut(rest, "/")
			dirs[dir] = true
		}
	}
	if len(dirs) != d.TreeDirs {
		t.Errorf("tree has %d dirs, want %d", len(dirs), d.TreeDirs)
	}
}

func TestCheckerFindsFirstBadByte(t *testing.T) {
	c := newChecker(true)
	o := object{Key: "k", Seed: 5, Size: 1 << 20}
	buf := make([]byte, o.Size)
	if _, err := detdata.New(o.Seed, o.Size).ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.check(o, 0, buf); err != nil {
		t.Fatalf("good bytes: %v", err)
	}
	buf[300000] ^= 1
	err := c.check(o, 0, buf)
	if err == nil || !strings.Contains(err.Error(), "byte 300000") {
		t.Errorf("bad byte: %v", err)
	}
}

// The catone row is about a directory of exactly 1,000 entries, in both
// data sets, and none of them a subdirectory.
func TestCatDirHasOneThousandEntries(t *testing.T) {
	for _, d := range []dataset{quickDataset(), fullDataset()} {
		n := 0
		for _, o := range d.objects() {
			if rest, ok := strings.CutPrefix(o.Key, d.catDir()+"/"); ok {
				if strings.Contains(rest, "/") {
					t.Errorf("%s: %s is below a subdirectory", d.Name, o.Key)
				}
				n++
			}
		}
		if n != 1000 {
			t.Errorf("%s: %s holds %d entries, want 1000", d.Name, d.catDir(), n)
		}
	}
}

func TestParseStatCPU(t *testing.T) {
	// utime 250 and stime 50 ticks; the command name holds ") (".
	stat := "4242 (s3fs) (x) S 1 4242 4242 0 -1 4194304 101 0 0 0 250 50 0 0 20 0 9 0 3281647 3133440 379\n"
	if got, err := parseStatCPU([]byte(stat)); err != nil || got != 3*time.Second {
		t.Errorf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"4242 s3fs S 1", "4242 (s3fs) S 1 2 3", "4242 (s3fs) S 1 4242 4242 0 -1 0 0 0 0 0 x 50 0"} {
		if _, err := parseStatCPU([]byte(bad)); err == nil {
			t.Errorf("parseStatCPU(%q) did not fail", bad)
		}
	}
}

func TestCPUTable(t *testing.T) {
	rep := report{
		Tools: []toolInfo{{Name: "mount-ws"}, {Name: "s3fs"}, {Name: "rclone"}},
		Rows: []row{
			{Title: "seq", PeakRSS: true, Results: map[string]*result{"mount-ws": {Value: 1, PeakRSSKiB: 2048}}},
			{Title: "par", PeakRSS: true, CPUPerMiB: true, Results: map[string]*result{
				"mount-ws": {Value: 1, CPUMsPerMiB: 1.234},
				"s3fs":     {Error: "boom", CPUMsPerMiB: 9},
			}},
		},
	}
	_, _, rss, cpu := rep.tables()
	if len(rss.rows) != 2 || rss.rows[0][1] != "2" {
		t.Errorf("rss rows = %q", rss.rows)
	}
	want := []string{"par", "1.23", "–", "–"}
	if len(cpu.rows) != 1 || strings.Join(cpu.rows[0], ",") != strings.Join(want, ",") {
		t.Errorf("cpu rows = %q, want [%q]", cpu.rows, want)
	}
}

func TestFailuresSayWhatItCost(t *testing.T) {
	rep := report{Rows: []row{{Title: "ls -l", Results: map[string]*result{
		sdkName:    {Value: 1},
		"mount-ws": {Error: "stopped", Requests: map[wsstack.Op]uint64{wsstack.OpHead: 7, wsstack.OpList: 9}, PeakRSSKiB: 3 << 10},
		"s3fs":     {Error: "warm the server: boom"},
	}}}}
	want := []string{
		"ls -l, mount-ws: stopped (until then: S3 requests (GET/HEAD/LIST) 0/7/9, peak RSS 3 MiB)",
		"ls -l, s3fs: warm the server: boom",
	}
	if got := rep.failures(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("failures = %q, want %q", got, want)
	}
}
