package main

import (
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...";
// otherwise the module version and commit the Go toolchain recorded are
// used (see buildVersion).
var version = ""

// buildVersion names this build: the -ldflags version if set, else the
// module version ("(devel)" in a checkout) and the commit it was built
// from, with "+dirty" when the tree had uncommitted changes.
func buildVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	// A tagged module version already names its commit.
	if strings.Contains(v, rev) {
		return v + dirty
	}
	return v + " commit " + rev + dirty
}
