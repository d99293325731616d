package bucket

import (
	"errors"
	iofs "io/fs"
	"path"
	"strings"
	"testing"
)

func TestKeyspaceObject(t *testing.T) {
	ks, err := newKeyspace("org/ws/")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rel, full string // full "" means refused
	}{
		{"a", "org/ws/a"},
		{"a/b.txt", "org/ws/a/b.txt"},
		{"dir/", "org/ws/dir/"},
		{"a b/ü+%2e%2e/x", "org/ws/a b/ü+%2e%2e/x"},
		{"...", "org/ws/..."},
		{"..a/.b/c.", "org/ws/..a/.b/c."},
		{`back\slash`, `org/ws/back\slash`},
		{"", ""},
		{"/", ""},
		{"/a", ""},
		{"a//b", ""},
		{"a//", ""},
		{"//", ""},
		{".", ""},
		{"..", ""},
		{"../x", ""},
		{"a/..", ""},
		{"a/../", ""},
		{"a/../../x", ""},
		{"./a", ""},
		{"a/./b", ""},
		{"a/.", ""},
		{"a/./", ""},
		{"nul\x00", ""},
		{"\xff", ""},
		{strings.Repeat("x", 1024-len("org/ws/")), "org/ws/" + strings.Repeat("x", 1024-len("org/ws/"))},
		{strings.Repeat("x", 1025-len("org/ws/")), ""},
	}
	for _, tt := range tests {
		full, err := ks.object(tt.rel)
		if tt.full == "" {
			if err == nil || !errors.Is(err, ErrInvalidKey) || !errors.Is(err, iofs.ErrInvalid) {
				t.Errorf("object(%q) = %q, %v; want ErrInvalidKey", tt.rel, full, err)
			}
			continue
		}
		if err != nil || full != tt.full {
			t.Errorf("object(%q) = %q, %v; want %q", tt.rel, full, err, tt.full)
		}
	}
}

func TestKeyspaceDir(t *testing.T) {
	ks, _ := newKeyspace("p/")
	for rel, want := range map[string]string{"": "p/", "a/": "p/a/", "a/b/": "p/a/b/", "a": "", "/": "", "a//": "", "../": "", "./": ""} {
		got, err := ks.dir(rel)
		if (err == nil) != (want != "") || got != want {
			t.Errorf("dir(%q) = %q, %v; want %q", rel, got, err, want)
		}
	}
}

func TestNewKeyspace(t *testing.T) {
	for prefix, ok := range map[string]bool{
		"": true, "a/": true, "org/ws/": true,
		"a": false, "/": false, "/a/": false, "a//": false, "../": false, "a/../": false, "./": false,
	} {
		if _, err := newKeyspace(prefix); (err == nil) != ok {
			t.Errorf("newKeyspace(%q): %v, want ok=%v", prefix, err, ok)
		}
	}
}

// FuzzKeyMapping checks, for any relative key the keyspace accepts, that
// the full key stays under the prefix whether the server takes keys
// literally (S3) or cleans them as paths (a file-system backend, a proxy
// normalising URLs), that the key is already clean, and that the mapping
// round-trips.
func FuzzKeyMapping(f *testing.F) {
	for _, s := range []string{"a", "a/b", "dir/", "..", "../x", "a/../../b", "a//b", "/a", ".", "a/./b", "x\x00", "...", "a/..b", "%2e%2e/x", "\xff", ""} {
		f.Add("org/ws/", s)
		f.Add("", s)
	}
	f.Fuzz(func(t *testing.T, prefix, rel string) {
		ks, err := newKeyspace(prefix)
		if err != nil {
			return
		}
		for _, mapping := range []func(string) (string, error){ks.object, ks.dir} {
			full, err := mapping(rel)
			if err != nil {
				if !errors.Is(err, ErrInvalidKey) {
					t.Fatalf("refused %q with an unclassified error: %v", rel, err)
				}
				continue
			}
			if !strings.HasPrefix(full, prefix) {
				t.Fatalf("%q maps to %q, outside %q", rel, full, prefix)
			}
			if len(full) > maxKeyLen {
				t.Fatalf("%q maps to a key of %d bytes", rel, len(full))
			}
			if rel != "" {
				cleaned := path.Clean("/" + full)
				if !strings.HasPrefix(cleaned+"/", "/"+prefix) || cleaned == "/"+strings.TrimSuffix(prefix, "/") {
					t.Fatalf("%q maps to %q, which cleans to %q, outside %q", rel, full, cleaned, prefix)
				}
				if want := strings.TrimSuffix(full, "/"); cleaned != "/"+want {
					t.Fatalf("%q maps to %q, which is not clean (%q)", rel, full, cleaned)
				}
				if strings.IndexByte(full, 0) >= 0 {
					t.Fatalf("%q maps to a key with NUL", rel)
				}
			}
			back, ok := ks.rel(full)
			if !ok || back != rel {
				t.Fatalf("%q maps to %q, back to %q (%v)", rel, full, back, ok)
			}
		}
	})
}
