package main

import (
	"slices"
	"strings"
)

// The README's allowances for errors a program may see, as justify names
// them.
const (
	whyEIOUpload = "EIO from close/fsync while a fault was in force: README Writing → The contract " +
		"(a failed upload is reported with EIO, kept and retried)"
	whyEIOStorage = "EIO while a fault was in force: README What you see → Errors " +
		"(storage unreachable or no valid credentials → EIO)"
	whyMayBeAbsent = "ENOENT for a name an earlier failed delete or rename may have removed (model)"
	whyStale       = "ESTALE reading a file whose failed upload was retried meanwhile: README What you see → Errors " +
		"(a changed object → ESTALE)"
)

// justify says which README allowance covers e, given the faults injected,
// or "" if none does. An EIO is allowed only if a fault was in force (or
// within its reach) while the operation ran.
func justify(e appError, faults []fault) (why string, during []string) {
	for _, f := range faults {
		if !f.Start.After(e.End) && !f.End.Add(f.reach()).Before(e.Start) {
			if !slices.Contains(during, f.Kind) {
				during = append(during, f.Kind)
			}
		}
	}
	switch {
	case e.Errno == "EIO" && len(during) > 0 && (e.Op == "close" || e.Op == "fsync"):
		return whyEIOUpload, during
	case e.Errno == "EIO" && len(during) > 0:
		return whyEIOStorage, during
	case e.Errno == "ENOENT" && e.MayBeAbsent && e.Op != "write" && e.Op != "close" && e.Op != "fsync":
		return whyMayBeAbsent, during
	case e.Errno == "ESTALE" && e.Pending && e.Op == "read":
		return whyStale, during
	}
	return "", during
}

// errorGroup is every error of one operation, errno and allowance.
type errorGroup struct {
	Op    string `json:"op"`
	Errno string `json:"errno"`
	Count int    `json:"count"`
	Why   string `json:"why"` // "" for errors the README does not allow
	// Faults counts the fault kinds in force, by their class ("api-down",
	// "s3-503", ...).
	Faults map[string]int `json:"faults,omitempty"`
}

// groupErrors justifies every error and groups them; unjustified ones are
// also returned one by one.
func groupErrors(errs []appError, faults []fault) (groups []errorGroup, unjustified []appError) {
	idx := make(map[[3]string]int)
	for _, e := range errs {
		why, during := justify(e, faults)
		e.Why = why
		if why == "" {
			unjustified = append(unjustified, e)
		}
		k := [3]string{e.Op, e.Errno, why}
		i, ok := idx[k]
		if !ok {
			i = len(groups)
			idx[k] = i
			groups = append(groups, errorGroup{Op: e.Op, Errno: e.Errno, Why: why, Faults: make(map[string]int)})
		}
		groups[i].Count++
		for _, d := range during {
			class, _, _ := strings.Cut(d, " ")
			groups[i].Faults[class]++
		}
	}
	slices.SortFunc(groups, func(a, b errorGroup) int { return b.Count - a.Count })
	return groups, unjustified
}
