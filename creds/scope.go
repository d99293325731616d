package creds

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Scope is the storage location the workspace credentials are valid for.
// A Provider pins it at mount time: every later refresh must name the same
// Bucket and Prefix (see Provider).
type Scope struct {
	// Bucket is the S3 bucket name, valid under the S3 naming rules.
	Bucket string
	// Prefix is the key prefix of the workspace inside Bucket, normalised by
	// NormalizePrefix: "" (the whole bucket) or "a/b/" (no leading "/", a
	// trailing "/", no empty, "." or ".." segments).
	Prefix string
	// Endpoint is the S3 endpoint URL, scheme and host only
	// ("https://s3.example.com:9000"). It is https unless it points at
	// loopback or insecure HTTP was allowed.
	Endpoint string
	// Region is the S3 signing region.
	Region string
}

// String describes the scope for messages, e.g. "s3://bkt/ws/ at https://s3.example (eu-west-1)".
func (s Scope) String() string {
	return fmt.Sprintf("s3://%s/%s at %s (%s)", s.Bucket, s.Prefix, s.Endpoint, s.Region)
}

// maxPrefixLen is the S3 key length limit; a longer prefix leaves no room for keys.
const maxPrefixLen = 1024

// NormalizePrefix returns p in the canonical form used everywhere in
// mount-ws: leading slashes removed, a trailing "/" added when p is not empty.
// It refuses (rather than repairs) prefixes whose meaning is ambiguous: empty
// segments ("a//b"), "." or ".." segments, control characters, invalid UTF-8
// and prefixes longer than 1024 bytes. NormalizePrefix is idempotent.
func NormalizePrefix(p string) (string, error) {
	if len(p) > maxPrefixLen {
		return "", fmt.Errorf("longer than %d bytes", maxPrefixLen)
	}
	if !utf8.ValidString(p) {
		return "", errors.New("not valid UTF-8")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return "", errors.New("contains a control character")
		}
	}
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return "", nil
	}
	p = strings.TrimSuffix(p, "/")
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			return "", errors.New("contains an empty segment (\"//\")")
		case ".", "..":
			return "", fmt.Errorf("contains a %q segment", seg)
		}
	}
	return p + "/", nil
}

// ValidateBucketName checks name against the S3 bucket naming rules
// (3 to 63 characters; lowercase letters, digits, '.' and '-'; starting and
// ending with a letter or digit; no "..", not an IP address, no reserved
// prefix or suffix).
func ValidateBucketName(name string) error {
	if len(name) < 3 || len(name) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long", clip(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("bucket name %q may contain only lowercase letters, digits, '.' and '-'", clip(name))
		}
	}
	if !isAlnum(name[0]) || !isAlnum(name[len(name)-1]) {
		return fmt.Errorf("bucket name %q must begin and end with a letter or digit", name)
	}
	if strings.Contains(name, "..") {
		return fmt.Errorf("bucket name %q must not contain \"..\"", name)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return fmt.Errorf("bucket name %q must not be an IP address", name)
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return fmt.Errorf("bucket name %q must not start with %q", name, p)
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, s) {
			return fmt.Errorf("bucket name %q must not end with %q", name, s)
		}
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// checkURL parses raw as an http(s) URL and applies the transport rule used
// for both the API URL and the S3 endpoint: https always; http only when the
// host is loopback or allowInsecure is set. It returns the URL with any
// trailing "/" removed from the path.
func checkURL(raw string, allowInsecure bool) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("empty URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a valid URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("URL %q must start with https:// (or http:// for loopback)", clip(raw))
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("URL %q has no host", clip(raw))
	case u.User != nil:
		return nil, fmt.Errorf("URL for host %q must not carry user information", u.Hostname())
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("URL %q must not have a query or fragment", u.Redacted())
	case u.Scheme == "http" && !allowInsecure && !isLoopback(u.Hostname()):
		return nil, fmt.Errorf("URL %q uses plain http to a non-loopback host; use https, or allow insecure HTTP explicitly", u.String())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// isLoopback reports whether host is "localhost" or a loopback IP address.
// Names other than localhost are not resolved: a DNS answer is not proof.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParseSlug splits "ORG/WS" and validates both slugs locally, so a typo is
// reported before any request is made.
func ParseSlug(s string) (org, ws string, err error) {
	org, ws, ok := strings.Cut(s, "/")
	if !ok || strings.Contains(ws, "/") {
		return "", "", fmt.Errorf("workspace %q must have the form ORG/WS, e.g. acme/analytics: %w", clip(s), ErrConfig)
	}
	if err := validateSlug("organisation", org); err != nil {
		return "", "", fmt.Errorf("workspace %q: %w", clip(s), err)
	}
	if err := validateSlug("workspace", ws); err != nil {
		return "", "", fmt.Errorf("workspace %q: %w", clip(s), err)
	}
	return org, ws, nil
}

// validateSlug accepts 1 to 64 letters, digits, '-', '_' and '.', starting
// with a letter or digit.
func validateSlug(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s slug is empty: %w", what, ErrConfig)
	}
	if len(s) > 64 {
		return fmt.Errorf("%s slug is longer than 64 characters: %w", what, ErrConfig)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			i > 0 && (c == '-' || c == '_' || c == '.')
		if !ok {
			return fmt.Errorf("%s slug %q may contain only letters, digits, '-', '_' and '.', and must start with a letter or digit: %w", what, clip(s), ErrConfig)
		}
	}
	return nil
}

// clip shortens s for inclusion in a message.
func clip(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
