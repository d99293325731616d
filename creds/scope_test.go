package creds

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizePrefix(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  string
	}{
		{"", "", ""},
		{"/", "", ""},
		{"//", "", ""},
		{"a", "a/", ""},
		{"a/", "a/", ""},
		{"/a/b", "a/b/", ""},
		{"/a/b/", "a/b/", ""},
		{"acme/data/", "acme/data/", ""},
		{"a b/ü/", "a b/ü/", ""},
		{"a//b", "", "empty segment"},
		{"a/b//", "", "empty segment"},
		{"a/./b", "", `"." segment`},
		{"../a", "", `".." segment`},
		{"a/..", "", `".." segment`},
		{"a\x00b", "", "control character"},
		{"a\nb", "", "control character"},
		{"\xff", "", "UTF-8"},
		{strings.Repeat("a", 1025), "", "longer than"},
	}
	for _, tt := range tests {
		got, err := NormalizePrefix(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NormalizePrefix(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizePrefix(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzNormalizePrefix(f *testing.F) {
	for _, s := range []string{"", "/", "a", "a/b/", "/a//b", "./a", "a/../b", "a\x00", "\xff/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := NormalizePrefix(in)
		if err != nil {
			return
		}
		if got == "" {
			if strings.Trim(in, "/") != "" {
				t.Fatalf("NormalizePrefix(%q) = \"\" for a non-empty prefix", in)
			}
			return
		}
		if strings.HasPrefix(got, "/") || !strings.HasSuffix(got, "/") {
			t.Fatalf("NormalizePrefix(%q) = %q: bad slashes", in, got)
		}
		for _, seg := range strings.Split(strings.TrimSuffix(got, "/"), "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("NormalizePrefix(%q) = %q: bad segment %q", in, got, seg)
			}
		}
		again, err := NormalizePrefix(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, got, again, err)
		}
	})
}

func TestValidateBucketName(t *testing.T) {
	for _, ok := range []string{"abc", "ws-bucket", "my.bucket.1", "workspaces", strings.Repeat("a", 63)} {
		if err := ValidateBucketName(ok); err != nil {
			t.Errorf("ValidateBucketName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "ab", strings.Repeat("a", 64), "Bucket", "my_bucket", "-abc", "abc-", "a..b",
		"192.168.1.1", "xn--abc", "sthree-abc", "abc-s3alias", "abc--ol-s3", "a b", "abc/"} {
		if err := ValidateBucketName(bad); err == nil {
			t.Errorf("ValidateBucketName(%q) accepted", bad)
		}
	}
}

func TestParseSlug(t *testing.T) {
	tests := []struct {
		in, org, ws string
		wantErr     string
	}{
		{"acme/data", "acme", "data", ""},
		{"Acme-1/my_ws.2", "Acme-1", "my_ws.2", ""},
		{"acme", "", "", "ORG/WS"},
		{"acme/data/x", "", "", "ORG/WS"},
		{"/data", "", "", "organisation slug is empty"},
		{"acme/", "", "", "workspace slug is empty"},
		{"ac me/data", "", "", "may contain only"},
		{"acme/-data", "", "", "must start with"},
		{"acme/..", "", "", "may contain only"},
		{"acme/" + strings.Repeat("x", 65), "", "", "longer than 64"},
	}
	for _, tt := range tests {
		org, ws, err := ParseSlug(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrConfig) {
				t.Errorf("ParseSlug(%q) error = %v, want ErrConfig containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || org != tt.org || ws != tt.ws {
			t.Errorf("ParseSlug(%q) = %q, %q, %v", tt.in, org, ws, err)
		}
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"https://api.example.com", false, true},
		{"https://api.example.com/base/", false, true},
		{"http://127.0.0.1:8080", false, true},
		{"http://[::1]:8080", false, true},
		{"http://localhost:8080", false, true},
		{"http://api.example.com", false, false},
		{"http://10.0.0.1", false, false},
		{"http://localhost.evil.com", false, false},
		{"http://api.example.com", true, true},
		{"ftp://api.example.com", true, false},
		{"api.example.com", false, false},
		{"https://", false, false},
		{"https://user:pw@api.example.com", false, false},
		{"https://api.example.com/?x=1", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		_, err := checkURL(tt.url, tt.insecure)
		if (err == nil) != tt.ok {
			t.Errorf("checkURL(%q, insecure=%v) = %v, want ok=%v", tt.url, tt.insecure, err, tt.ok)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("error reveals URL password: %v", err)
		}
	}
}
