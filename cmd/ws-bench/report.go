package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"mount-ws/internal/wsstack"
)

// sdkName is the column of the ceiling in results.
const sdkName = "SDK"

// report is everything one run measured; it is what -json writes.
type report struct {
	Date     time.Time  `json:"date"`
	Command  string     `json:"command"`
	Machine  machine    `json:"machine"`
	Dataset  string     `json:"dataset"`
	Verified bool       `json:"verified"` // every byte read was checked
	Tools    []toolInfo `json:"tools"`    // table order, without the SDK
	Rows     []row      `json:"rows"`
	Seconds  float64    `json:"seconds"` // the whole run, seeding included
	Notes    []string   `json:"notes,omitempty"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	MemoryGiB int    `json:"memory_gib"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
}

type toolInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Command string `json:"command"`
}

type row struct {
	ID            string             `json:"id"`
	Title         string             `json:"title"`
	Unit          string             `json:"unit"`
	LowerIsBetter bool               `json:"lower_is_better"`
	PeakRSS       bool               `json:"peak_rss"`              // results have PeakRSSKiB
	CPUPerMiB     bool               `json:"cpu_per_mib,omitempty"` // results have CPUMsPerMiB
	SDKMethod     string             `json:"sdk_method"`
	MountMethod   string             `json:"mount_method"`
	Results       map[string]*result `json:"results"` // by tool name, and sdkName
}

type result struct {
	Value float64 `json:"value"`
	// Ratio is to the SDK of the same run; 0 when either failed.
	Ratio      float64               `json:"ratio,omitempty"`
	Requests   map[wsstack.Op]uint64 `json:"s3_requests"`
	PeakRSSKiB int64                 `json:"peak_rss_kib,omitempty"`
	Error      string                `json:"error,omitempty"`
	// CPUMsPerMiB is the user+system CPU time of the FUSE process during
	// the measurement, in ms per MiB read (rows with CPUPerMiB).
	CPUMsPerMiB float64 `json:"cpu_ms_per_mib,omitempty"`
}

// setRatios fills every result's ratio to the SDK: tool/SDK for rates,
// SDK/tool for times, so above 1 always means faster than the SDK.
func (r *row) setRatios() {
	s := r.Results[sdkName]
	if s == nil || s.Error != "" || s.Value <= 0 {
		return
	}
	for name, t := range r.Results {
		if name == sdkName || t.Error != "" || t.Value <= 0 {
			continue
		}
		if r.LowerIsBetter {
			t.Ratio = s.Value / t.Value
		} else {
			t.Ratio = t.Value / s.Value
		}
	}
}

// formatValue prints a value in its unit with sensible precision.
func formatValue(v float64, unit string) string {
	switch unit {
	case "s":
		return fmt.Sprintf("%.3f s", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// cell is one tool's entry in the main table.
func (r row) cell(name string) string {
	res := r.Results[name]
	switch {
	case res == nil:
		return "–"
	case res.Error != "":
		return "failed"
	case name == sdkName || res.Ratio == 0:
		return formatValue(res.Value, r.Unit)
	}
	return fmt.Sprintf("%s (%.2f×)", formatValue(res.Value, r.Unit), res.Ratio)
}

// formatRequests prints GET/HEAD/LIST counts, then any others by name.
func formatRequests(c map[wsstack.Op]uint64) string {
	s := fmt.Sprintf("%d/%d/%d", c[wsstack.OpGet], c[wsstack.OpHead], c[wsstack.OpList])
	var other []string
	for op, n := range c {
		if n > 0 && op != wsstack.OpGet && op != wsstack.OpHead && op != wsstack.OpList {
			other = append(other, fmt.Sprintf("%s %d", op, n))
		}
	}
	sort.Strings(other)
	if len(other) > 0 {
		s += " + " + strings.Join(other, ", ")
	}
	return s
}

// table is a grid of cells printable as aligned text or as markdown.
type table struct {
	header []string
	rows   [][]string
}

func (t table) text(w io.Writer) {
	width := make([]int, len(t.header))
	for _, r := range append([][]string{t.header}, t.rows...) {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)))
			}
		}
		fmt.Fprintln(w, b.String())
	}
	line(t.header)
	sep := make([]string, len(width))
	for i, n := range width {
		sep[i] = strings.Repeat("-", n)
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
}

func (t table) markdown(w io.Writer) {
	esc := func(r []string) string {
		out := make([]string, len(r))
		for i, c := range r {
			out[i] = strings.ReplaceAll(c, "|", `\|`)
		}
		return "| " + strings.Join(out, " | ") + " |"
	}
	fmt.Fprintln(w, esc(t.header))
	sep := make([]string, len(t.header))
	for i := range sep {
		sep[i] = "---"
	}
	fmt.Fprintln(w, "|"+strings.Join(sep, "|")+"|")
	for _, r := range t.rows {
		fmt.Fprintln(w, esc(r))
	}
}

// tables returns the main table, the S3 requests per tool, and tables of
// the FUSE processes: their peak RSS in the rows that report it, and their
// CPU time per MiB read in the rows that measure it.
func (rep report) tables() (main, requests, rss, cpu table) {
	names := []string{sdkName}
	for _, t := range rep.Tools {
		names = append(names, t.Name)
	}
	main.header = []string{"Workload", "SDK ceiling"}
	for _, t := range rep.Tools {
		main.header = append(main.header, t.Name+" (ratio)")
	}
	main.header = append(main.header, "mount-ws S3 requests (GET/HEAD/LIST)")
	requests.header = append([]string{"S3 requests (GET/HEAD/LIST)"}, names...)
	rss.header = []string{"Peak RSS, MiB"}
	cpu.header = []string{"CPU time of the FUSE process, ms per MiB read"}
	for _, t := range rep.Tools {
		rss.header = append(rss.header, t.Name)
		cpu.header = append(cpu.header, t.Name)
	}
	for _, r := range rep.Rows {
		title := fmt.Sprintf("%s (%s)", r.Title, r.Unit)
		m := []string{title}
		q := []string{title}
		for _, n := range names {
			m = append(m, r.cell(n))
			if res := r.Results[n]; res != nil && res.Error == "" {
				q = append(q, formatRequests(res.Requests))
			} else {
				q = append(q, "–")
			}
		}
		if res := r.Results["mount-ws"]; res != nil && res.Error == "" {
			m = append(m, formatRequests(res.Requests))
		} else {
			m = append(m, "–")
		}
		main.rows = append(main.rows, m)
		requests.rows = append(requests.rows, q)
		if r.PeakRSS {
			rss.rows = append(rss.rows, rep.toolRow(r, func(res *result) (string, bool) {
				return fmt.Sprintf("%.0f", float64(res.PeakRSSKiB)/1024), res.PeakRSSKiB > 0
			}))
		}
		if r.CPUPerMiB {
			cpu.rows = append(cpu.rows, rep.toolRow(r, func(res *result) (string, bool) {
				return fmt.Sprintf("%.2f", res.CPUMsPerMiB), res.Error == "" && res.CPUMsPerMiB > 0
			}))
		}
	}
	return main, requests, rss, cpu
}

// toolRow is r's title, then a cell per tool: what value returns for the
// tool's result, or "–" without a result or when value has nothing to show.
func (rep report) toolRow(r row, value func(res *result) (string, bool)) []string {
	s := []string{r.Title}
	for _, t := range rep.Tools {
		if res := r.Results[t.Name]; res != nil {
			if v, ok := value(res); ok {
				s = append(s, v)
				continue
			}
		}
		s = append(s, "–")
	}
	return s
}

// failures lists every failed measurement, for below the tables.
func (rep report) failures() []string {
	var out []string
	for _, r := range rep.Rows {
		names := make([]string, 0, len(r.Results))
		for n := range r.Results {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if res := r.Results[n]; res.Error != "" {
				out = append(out, fmt.Sprintf("%s, %s: %s%s", r.Title, n, res.Error, res.untilThen()))
			}
		}
	}
	return out
}

// untilThen says what a failed measurement had cost when it failed, or ""
// if nothing: one stopped at the timeout may show why it was slow (a
// request per entry, say).
func (res *result) untilThen() string {
	var parts []string
	if len(res.Requests) > 0 {
		parts = append(parts, "S3 requests (GET/HEAD/LIST) "+formatRequests(res.Requests))
	}
	if res.PeakRSSKiB > 0 {
		parts = append(parts, fmt.Sprintf("peak RSS %d MiB", res.PeakRSSKiB>>10))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (until then: " + strings.Join(parts, ", ") + ")"
}

// writeText prints the tables for a terminal.
func (rep report) writeText(w io.Writer) {
	main, requests, rss, cpu := rep.tables()
	fmt.Fprintln(w)
	main.text(w)
	fmt.Fprintln(w)
	requests.text(w)
	for _, t := range []table{rss, cpu} {
		if len(t.rows) > 0 {
			fmt.Fprintln(w)
			t.text(w)
		}
	}
	if f := rep.failures(); len(f) > 0 {
		fmt.Fprintln(w, "\nFailures:")
		for _, s := range f {
			fmt.Fprintln(w, "  "+s)
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "Note: "+n)
	}
}

// writeMarkdown writes the tables and the run's particulars as markdown, to
// paste into docs/BENCHMARKS.md.
func (rep report) writeMarkdown(w io.Writer) {
	main, requests, rss, cpu := rep.tables()
	fmt.Fprintf(w, "Run %s, data set %q, %d CPUs, %d GiB RAM, kernel %s, %s; whole run %.0f s.\n\n",
		rep.Date.UTC().Format("2006-01-02 15:04 MST"), rep.Dataset, rep.Machine.CPUs, rep.Machine.MemoryGiB,
		rep.Machine.Kernel, rep.Machine.Go, rep.Seconds)
	main.markdown(w)
	fmt.Fprintln(w)
	requests.markdown(w)
	for _, t := range []table{rss, cpu} {
		if len(t.rows) > 0 {
			fmt.Fprintln(w)
			t.markdown(w)
		}
	}
	if f := rep.failures(); len(f) > 0 {
		fmt.Fprintln(w, "\nFailures:")
		for _, s := range f {
			fmt.Fprintln(w, "- "+s)
		}
	}
	fmt.Fprintln(w, "\nHow each row is measured (SDK; mounts):")
	for _, r := range rep.Rows {
		fmt.Fprintf(w, "- %s: %s; %s\n", r.Title, r.SDKMethod, r.MountMethod)
	}
	fmt.Fprintln(w, "\nTools:")
	for _, t := range rep.Tools {
		fmt.Fprintf(w, "- %s (%s): `%s`\n", t.Name, t.Version, t.Command)
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "\nNote: "+n)
	}
}

func (rep report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// parseFioIOPS returns the read IOPS of the first job of fio's JSON output.
// fio may print warnings before the JSON document; they are skipped.
func parseFioIOPS(out []byte) (float64, error) {
	i := bytes.IndexByte(out, '{')
	if i < 0 {
		return 0, errors.New("no JSON in output")
	}
	var doc struct {
		Jobs []struct {
			Error int `json:"error"`
			Read  struct {
				IOPS float64 `json:"iops"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if err := json.NewDecoder(bytes.NewReader(out[i:])).Decode(&doc); err != nil {
		return 0, fmt.Errorf("decode output: %w", err)
	}
	if len(doc.Jobs) == 0 {
		return 0, errors.New("no job in output")
	}
	if e := doc.Jobs[0].Error; e != 0 {
		return 0, fmt.Errorf("job failed with error %d", e)
	}
	return doc.Jobs[0].Read.IOPS, nil
}

// sizeName prints a size in whole KiB, MiB or GiB when it is one.
func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// countName prints a count with a thousands separator: 10,000.
func countName(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
