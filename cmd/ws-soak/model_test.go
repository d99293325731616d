package main

import (
	"io"
	"testing"
	"time"
)

func TestModelRules(t *testing.T) {
	a := content{Segs: []segment{{Seed: 1, Size: 10}}}
	b := content{Segs: []segment{{Seed: 2, Size: 20}}}
	m := newModel()
	m.wrote("x", a, false)
	m.wrote("y", b, true) // close failed: still what y must hold
	if st := m.get("y"); !st.Pending || len(st.Possible) != 1 || !st.Possible[0].equal(b) {
		t.Errorf("after a write whose close failed: %+v", st)
	}

	m.renamed("x", "y", false, false) // failed: y may hold x's copy, x stays
	if st := m.get("y"); len(st.Possible) != 2 || st.mayBeAbsent() {
		t.Errorf("target after a failed rename: %+v", st)
	}
	if c, ok := m.get("x").definite(); !ok || !c.equal(a) {
		t.Errorf("source after a failed rename: %+v", m.get("x"))
	}

	m.deleted("x", false, false) // failed: may or may not be gone
	if st := m.get("x"); len(st.Possible) != 2 || !st.mayBeAbsent() {
		t.Errorf("after a failed delete: %+v", st)
	}
	m.deleted("x", false, true) // ENOENT: unchanged
	if st := m.get("x"); len(st.Possible) != 2 {
		t.Errorf("after ENOENT: %+v", st)
	}

	m.renamed("y", "z", true, false)
	if st := m.get("y"); len(st.Possible) != 1 || !st.Possible[0].Absent {
		t.Errorf("source after a rename: %+v", st)
	}
	if st := m.get("z"); len(st.Possible) != 2 || !st.Pending {
		t.Errorf("target after a rename: %+v", st)
	}
	m.deleted("z", true, false)
	if c, ok := m.get("z").definite(); !ok || !c.Absent {
		t.Errorf("after a delete: %+v", m.get("z"))
	}
}

func TestContentMatches(t *testing.T) {
	c := content{}.appended(segment{Seed: 7, Size: 100_000}).appended(segment{Seed: 8, Size: 300_000})
	b, _ := io.ReadAll(c.reader())
	if !c.matches(b) {
		t.Fatal("content does not match its own bytes")
	}
	b[250_000] ^= 1
	if c.matches(b) || c.matches(b[:1000]) {
		t.Error("content matches other bytes")
	}
	if absent.matches(nil) {
		t.Error("absent matches an empty object")
	}
}

func TestJustify(t *testing.T) {
	t0 := time.Now()
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	faults := []fault{
		{Kind: "s3-503 PUT", Start: at(10), End: at(15)},
		{Kind: "api-down", Start: at(30), End: at(40)},
	}
	for _, tc := range []struct {
		name string
		e    appError
		want string
	}{
		{"close EIO during an S3 fault", appError{Op: "close", Errno: "EIO", Start: at(9), End: at(11)}, whyEIOUpload},
		{"read EIO just after an API outage", appError{Op: "read", Errno: "EIO", Start: at(44), End: at(45)}, whyEIOStorage},
		{"EIO with no fault", appError{Op: "close", Errno: "EIO", Start: at(20), End: at(21)}, ""},
		{"ENOENT of a maybe-deleted name", appError{Op: "open", Errno: "ENOENT", MayBeAbsent: true, Start: at(20), End: at(21)}, whyMayBeAbsent},
		{"ENOENT of a name that must exist", appError{Op: "open", Errno: "ENOENT", Start: at(12), End: at(13)}, ""},
		{"ESTALE while an upload is retried", appError{Op: "read", Errno: "ESTALE", Pending: true, Start: at(20), End: at(21)}, whyStale},
		{"wrong data", appError{Op: "read", Errno: "WRONGDATA", Start: at(12), End: at(13)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := justify(tc.e, faults); got != tc.want {
				t.Errorf("justify = %q, want %q", got, tc.want)
			}
		})
	}
}
