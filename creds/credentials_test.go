package creds

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// validBody returns a valid answer as a map the tests can break.
func validBody(now time.Time) map[string]any {
	return map[string]any{
		"access_key_id":     "AKIATEST00000001",
		"secret_access_key": testSecret,
		"session_token":     testSession,
		"expiration":        now.Add(time.Hour).UTC().Format(time.RFC3339),
		"bucket":            "ws-bucket",
		"prefix":            "/acme/data",
		"endpoint":          "https://S3.Example.com/",
		"region":            "eu-west-1",
	}
}

func TestParseCredentialsValid(t *testing.T) {
	now := time.Now().Round(0)
	b, _ := json.Marshal(validBody(now))
	c, err := parseCredentials(b, now, false)
	if err != nil {
		t.Fatal(err)
	}
	want := Scope{Bucket: "ws-bucket", Prefix: "acme/data/", Endpoint: "https://s3.example.com", Region: "eu-west-1"}
	if c.Scope != want {
		t.Errorf("scope = %+v, want %+v", c.Scope, want)
	}
	if c.AccessKeyID != "AKIATEST00000001" || c.SecretAccessKey.Reveal() != testSecret || c.SessionToken.Reveal() != testSession {
		t.Errorf("keys not decoded")
	}
	if d := c.Expiration.Sub(now.Add(time.Hour)); d > time.Second || d < -time.Second {
		t.Errorf("expiration = %v", c.Expiration)
	}
}

func TestParseCredentialsRefusals(t *testing.T) {
	now := time.Now().Round(0)
	type refusal struct {
		name   string
		edit   func(m map[string]any)
		raw    string // used instead of the edited body when set
		field  string
		reason string
	}
	tests := []refusal{
		{name: "not json", raw: "<html>hi</html>", reason: "not a JSON object"},
		{name: "array", raw: "[]", reason: "not a JSON object"},
		{name: "null", raw: "null", reason: "not a JSON object"},
		{name: "trailing", raw: `{"a":1} {}`, reason: "trailing data"},
		{name: "empty", raw: "", reason: "not a JSON object"},
		{name: "truncated", raw: `{"access_key_id":"AK`, reason: "not a JSON object"},
		{name: "expiration bad", edit: func(m map[string]any) { m["expiration"] = "tomorrow" }, field: "expiration", reason: "RFC 3339"},
		{name: "expiration past", edit: func(m map[string]any) { m["expiration"] = now.Add(-time.Minute).Format(time.RFC3339) }, field: "expiration", reason: "not in the future"},
		{name: "expiration now", edit: func(m map[string]any) { m["expiration"] = now.UTC().Format(time.RFC3339Nano) }, field: "expiration", reason: "not in the future"},
		{name: "bucket upper", edit: func(m map[string]any) { m["bucket"] = "Bad_Bucket" }, field: "bucket", reason: "lowercase"},
		{name: "bucket short", edit: func(m map[string]any) { m["bucket"] = "ab" }, field: "bucket", reason: "3 to 63"},
		{name: "prefix dotdot", edit: func(m map[string]any) { m["prefix"] = "acme/../other" }, field: "prefix", reason: `".." segment`},
		{name: "prefix empty seg", edit: func(m map[string]any) { m["prefix"] = "acme//data" }, field: "prefix", reason: "empty segment"},
		{name: "endpoint http", edit: func(m map[string]any) { m["endpoint"] = "http://s3.example.com" }, field: "endpoint", reason: "plain http"},
		{name: "endpoint garbage", edit: func(m map[string]any) { m["endpoint"] = "::::" }, field: "endpoint", reason: "URL"},
		{name: "endpoint path", edit: func(m map[string]any) { m["endpoint"] = "https://s3.example.com/x" }, field: "endpoint", reason: "path"},
		{name: "region empty", edit: func(m map[string]any) { m["region"] = "" }, field: "region", reason: "not a region"},
		{name: "region slash", edit: func(m map[string]any) { m["region"] = "eu/west" }, field: "region", reason: "not a region"},
		{name: "access key empty", edit: func(m map[string]any) { m["access_key_id"] = "" }, field: "access_key_id", reason: "empty"},
		{name: "secret empty", edit: func(m map[string]any) { m["secret_access_key"] = "" }, field: "secret_access_key", reason: "empty"},
		{name: "secret spaces", edit: func(m map[string]any) { m["secret_access_key"] = "a " + testSecret }, field: "secret_access_key", reason: "spaces"},
	}
	for _, f := range responseFields {
		tests = append(tests,
			refusal{name: "missing " + f, edit: func(m map[string]any) { delete(m, f) }, field: f, reason: "missing"},
			refusal{name: "number " + f, edit: func(m map[string]any) { m[f] = 42 }, field: f, reason: "got a number"},
			refusal{name: "null " + f, edit: func(m map[string]any) { m[f] = nil }, field: f, reason: "got null"},
			refusal{name: "object " + f, edit: func(m map[string]any) { m[f] = map[string]any{"x": testSecret} }, field: f, reason: "got an object"},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.raw)
			if tt.edit != nil {
				m := validBody(now)
				tt.edit(m)
				body, _ = json.Marshal(m)
			}
			_, err := parseCredentials(body, now, false)
			var ire *InvalidResponseError
			if !errors.As(err, &ire) || !errors.Is(err, ErrInvalidResponse) {
				t.Fatalf("err = %v, want *InvalidResponseError", err)
			}
			if ire.Field != tt.field || !strings.Contains(ire.Reason, tt.reason) {
				t.Errorf("err = %v; want field %q, reason containing %q", err, tt.field, tt.reason)
			}
			if tt.field != "" && !strings.Contains(err.Error(), `"`+tt.field+`"`) {
				t.Errorf("message %q does not name the field", err)
			}
			assertNoSecrets(t, "error", err.Error())
		})
	}
}

func TestParseCredentialsInsecureEndpoint(t *testing.T) {
	now := time.Now().Round(0)
	for _, tt := range []struct {
		endpoint string
		insecure bool
		ok       bool
	}{
		{"http://127.0.0.1:7070", false, true},
		{"http://localhost:7070", false, true},
		{"http://s3.internal:7070", false, false},
		{"http://s3.internal:7070", true, true},
	} {
		m := validBody(now)
		m["endpoint"] = tt.endpoint
		b, _ := json.Marshal(m)
		_, err := parseCredentials(b, now, tt.insecure)
		if (err == nil) != tt.ok {
			t.Errorf("endpoint %q insecure=%v: err = %v", tt.endpoint, tt.insecure, err)
		}
	}
}

func FuzzParseCredentials(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	good, _ := json.Marshal(validBody(now))
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"access_key_id":1}`))
	f.Add([]byte(`{"access_key_id":"a","secret_access_key":"b","session_token":"","expiration":"2027-01-01T00:00:00Z","bucket":"abc","prefix":"/","endpoint":"http://[::1]:1","region":"r"}`))
	f.Add([]byte(`null`))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := parseCredentials(body, now, false)
		if err != nil {
			var ire *InvalidResponseError
			if !errors.As(err, &ire) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		// Whatever is accepted satisfies every documented invariant.
		if !c.Expiration.After(now) {
			t.Fatalf("accepted expiration %v", c.Expiration)
		}
		if ValidateBucketName(c.Bucket) != nil {
			t.Fatalf("accepted bucket %q", c.Bucket)
		}
		if p, err := NormalizePrefix(c.Prefix); err != nil || p != c.Prefix {
			t.Fatalf("prefix %q not normalised", c.Prefix)
		}
		if _, err := checkURL(c.Endpoint, false); err != nil {
			t.Fatalf("accepted endpoint %q: %v", c.Endpoint, err)
		}
		if c.AccessKeyID == "" || c.SecretAccessKey == "" || c.Region == "" {
			t.Fatalf("accepted empty field: %+v", c)
		}
	})
}
