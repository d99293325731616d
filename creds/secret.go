package creds

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
)

const redacted = "REDACTED"

// Secret holds a value that must never reach a log line, an error string or
// a JSON document: every way of printing it (fmt verbs, slog, JSON, text
// marshalling) yields "REDACTED", or "" for an empty Secret. Only Reveal
// returns the value; call it at the one place that needs it (a request
// header, a signer).
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String returns "REDACTED", or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString is used by %#v.
func (s Secret) GoString() string { return fmt.Sprintf("creds.Secret(%q)", s.String()) }

// Format makes every fmt verb (%s, %v, %q, %x, ...) print the redacted form.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	if verb == 'q' {
		_, _ = fmt.Fprintf(f, "%q", s.String())
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// MarshalJSON encodes the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText encodes the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue makes slog print the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
