package creds

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Credentials are one set of temporary workspace credentials and the
// location they are valid for. Printing or logging a Credentials value
// never shows the secret parts.
type Credentials struct {
	// AccessKeyID identifies the key pair. It is not secret, but the
	// package logs only its last four characters.
	AccessKeyID     string
	SecretAccessKey Secret
	SessionToken    Secret // may be empty
	// Expiration is the wall-clock time after which the storage rejects
	// the credentials.
	Expiration time.Time
	Scope
}

// keyHint returns the last four characters of an access key ID, enough to
// tell keys apart in logs.
func keyHint(id string) string {
	if len(id) <= 4 {
		return "…" + id
	}
	return "…" + id[len(id)-4:]
}

// response fields, in the order they are validated.
var responseFields = []string{
	"access_key_id", "secret_access_key", "session_token", "expiration",
	"bucket", "prefix", "endpoint", "region",
}

// parseCredentials decodes and validates a 200 answer. now is the wall-clock
// time the expiration is checked against. Every refusal is an
// *InvalidResponseError naming the field; secret values never appear in it.
func parseCredentials(body []byte, now time.Time, allowInsecure bool) (Credentials, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return Credentials{}, &InvalidResponseError{Reason: "body is not a JSON object"}
	}
	if dec.More() {
		return Credentials{}, &InvalidResponseError{Reason: "trailing data after the JSON object"}
	}
	v := make(map[string]string, len(responseFields))
	for _, name := range responseFields {
		r, ok := raw[name]
		if !ok {
			return Credentials{}, &InvalidResponseError{Field: name, Reason: "missing"}
		}
		s, ok := jsonString(r)
		if !ok {
			return Credentials{}, &InvalidResponseError{Field: name, Reason: "want a string, got " + jsonKind(r)}
		}
		v[name] = s
	}

	c := Credentials{
		AccessKeyID:     v["access_key_id"],
		SecretAccessKey: Secret(v["secret_access_key"]),
		SessionToken:    Secret(v["session_token"]),
	}
	if err := checkToken(c.AccessKeyID, 128); err != "" {
		return Credentials{}, &InvalidResponseError{Field: "access_key_id", Reason: err}
	}
	if err := checkToken(c.SecretAccessKey.Reveal(), 1024); err != "" {
		return Credentials{}, &InvalidResponseError{Field: "secret_access_key", Reason: err}
	}
	if st := c.SessionToken.Reveal(); st != "" {
		if err := checkToken(st, 16<<10); err != "" {
			return Credentials{}, &InvalidResponseError{Field: "session_token", Reason: err}
		}
	}

	exp, err := time.Parse(time.RFC3339, v["expiration"])
	if err != nil {
		return Credentials{}, &InvalidResponseError{Field: "expiration", Reason: fmt.Sprintf("%q is not an RFC 3339 time", clip(v["expiration"]))}
	}
	if !exp.After(now) {
		return Credentials{}, &InvalidResponseError{Field: "expiration", Reason: fmt.Sprintf("%s is not in the future (now %s); check this machine's clock", exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	c.Expiration = exp

	if err := ValidateBucketName(v["bucket"]); err != nil {
		return Credentials{}, &InvalidResponseError{Field: "bucket", Reason: err.Error()}
	}
	c.Bucket = v["bucket"]
	if c.Prefix, err = NormalizePrefix(v["prefix"]); err != nil {
		return Credentials{}, &InvalidResponseError{Field: "prefix", Reason: fmt.Sprintf("%q %v", clip(v["prefix"]), err)}
	}
	u, err := checkURL(v["endpoint"], allowInsecure)
	if err != nil {
		return Credentials{}, &InvalidResponseError{Field: "endpoint", Reason: err.Error()}
	}
	if u.Path != "" && u.Path != "/" {
		return Credentials{}, &InvalidResponseError{Field: "endpoint", Reason: fmt.Sprintf("%q must not have a path", u.Redacted())}
	}
	c.Endpoint = u.Scheme + "://" + strings.ToLower(u.Host)
	c.Region = v["region"]
	if c.Region == "" || len(c.Region) > 64 || strings.IndexFunc(c.Region, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) >= 0 {
		return Credentials{}, &InvalidResponseError{Field: "region", Reason: fmt.Sprintf("%q is not a region name", clip(c.Region))}
	}
	return c, nil
}

// checkToken checks a credential string without revealing it: non-empty,
// at most max bytes, printable ASCII without spaces.
func checkToken(s string, max int) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > max:
		return fmt.Sprintf("longer than %d bytes", max)
	case strings.IndexFunc(s, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' }) >= 0:
		return "contains spaces, control or non-ASCII characters"
	}
	return ""
}

// jsonKind names the JSON type of raw for messages.
func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
