package creds

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Sentinel errors classify every error this package returns, so callers can
// choose an exit code or a retry policy with errors.Is, never by matching
// text.
var (
	// ErrConfig: the configuration is unusable (bad ORG/WS slug, API URL,
	// insecure http). Fix the command line.
	ErrConfig = errors.New("invalid configuration")
	// ErrToken: no token could be read (missing, empty or unreadable file).
	ErrToken = errors.New("no usable token")
	// ErrUnauthorized: the API rejected the token (401).
	ErrUnauthorized = errors.New("token rejected")
	// ErrForbidden: the token is valid but has no access to the workspace (403).
	ErrForbidden = errors.New("no access to workspace")
	// ErrNotFound: the organisation or workspace does not exist (404).
	ErrNotFound = errors.New("workspace not found")
	// ErrRefused: the API refused the request as malformed or conflicting
	// (400, 405, 409, 422 and other 4xx without a more specific sentinel).
	ErrRefused = errors.New("request refused")
	// ErrUpgradeRequired: this mount-ws version is too old for the API (426).
	ErrUpgradeRequired = errors.New("upgrade required")
	// ErrRateLimited: the API asked us to slow down (429). Temporary.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnavailable: the API could not answer (5xx, timeout, connection
	// error). Temporary.
	ErrUnavailable = errors.New("workspace API unavailable")
	// ErrInvalidResponse: the API answered 200 with a body we refuse
	// (missing or ill-typed field, bad expiration, oversized body, ...).
	ErrInvalidResponse = errors.New("invalid credentials response")
	// ErrScopeChanged: a refresh named a different bucket or prefix than the
	// one pinned at mount time; the new credentials were not used.
	ErrScopeChanged = errors.New("storage location changed")
	// ErrExpired: the credentials expired (or the storage rejected them) and
	// no fresh ones could be obtained within the wait bound. The filesystem
	// turns this into EIO.
	ErrExpired = errors.New("credentials expired")
	// ErrClosed: the Provider was closed and holds no valid credentials.
	ErrClosed = errors.New("credentials provider closed")
)

// IsTemporary reports whether err may go away by itself (rate limiting, an
// unavailable API), so that retrying later makes sense.
func IsTemporary(err error) bool {
	return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrRateLimited)
}

// FailureKind names a class of refresh failure in Stats.
type FailureKind string

// Failure kinds counted by Stats.
const (
	FailureUnavailable     FailureKind = "unavailable"      // 5xx, timeouts, connection errors
	FailureRateLimited     FailureKind = "rate_limited"     // 429
	FailureAuth            FailureKind = "auth"             // 401, 403, token unreadable
	FailureNotFound        FailureKind = "not_found"        // 404
	FailureRefused         FailureKind = "refused"          // other 4xx
	FailureInvalidResponse FailureKind = "invalid_response" // 200 with a body we refuse
	FailureScopeChanged    FailureKind = "scope_changed"    // bucket or prefix changed
	FailureOther           FailureKind = "other"
)

// KindOf classifies err for Stats and logs.
func KindOf(err error) FailureKind {
	switch {
	case errors.Is(err, ErrUnavailable):
		return FailureUnavailable
	case errors.Is(err, ErrRateLimited):
		return FailureRateLimited
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrForbidden), errors.Is(err, ErrToken):
		return FailureAuth
	case errors.Is(err, ErrNotFound):
		return FailureNotFound
	case errors.Is(err, ErrRefused), errors.Is(err, ErrUpgradeRequired):
		return FailureRefused
	case errors.Is(err, ErrInvalidResponse):
		return FailureInvalidResponse
	case errors.Is(err, ErrScopeChanged):
		return FailureScopeChanged
	}
	return FailureOther
}

// ValidationError is one entry of a 422 answer's "errors" list.
type ValidationError struct {
	// Loc is where the error occurred, e.g. ["path", "org"].
	Loc []string
	// Msg is the human-readable message.
	Msg string
	// Type is the machine-readable error type.
	Type string
}

func (v ValidationError) String() string {
	if len(v.Loc) == 0 {
		return v.Msg
	}
	return strings.Join(v.Loc, ".") + ": " + v.Msg
}

// APIError is a non-200 answer from the workspace API, decoded from the
// error envelope {"code","detail","type","errors"} when the body is JSON.
// errors.Is(err, ErrUnauthorized) and friends classify it by Status.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Type is the envelope's machine-readable error type ("" if absent).
	Type string
	// Detail is the envelope's human-readable message, or a printable
	// excerpt of a non-JSON body.
	Detail string
	// Validation holds the 422 validation errors.
	Validation []ValidationError
	// Source says where the token came from (e.g. "token file /x/token"),
	// for 401 messages. Never the token itself.
	Source string
	// Workspace is "org/ws", for 403 and 404 messages.
	Workspace string
	// Version is this program's version, for 426 messages.
	Version string
	// RetryAfter is the parsed Retry-After delay of a 429 or 5xx answer
	// (0 when absent).
	RetryAfter time.Duration
	// Location is the redirect target of a 3xx answer.
	Location string
}

func (e *APIError) Error() string {
	what := e.statusLabel()
	switch e.Status {
	case http.StatusUnauthorized:
		return fmt.Sprintf("the workspace API rejected the token from %s (%s); check the token, or replace it and try again", e.Source, what)
	case http.StatusForbidden:
		return fmt.Sprintf("the token from %s has no access to workspace %s (%s); ask an administrator of the organisation for access", e.Source, e.Workspace, what)
	case http.StatusNotFound:
		return fmt.Sprintf("workspace %s does not exist (%s); check the ORG/WS spelling", e.Workspace, what)
	case http.StatusMethodNotAllowed:
		return fmt.Sprintf("the workspace API does not serve credentials at this URL (%s); check the API URL", what)
	case http.StatusUnprocessableEntity:
		return fmt.Sprintf("the workspace API refused the request (%s)", what)
	case http.StatusUpgradeRequired:
		return fmt.Sprintf("this mount-ws (version %s) is too old for the workspace API (%s); upgrade mount-ws", orUnknown(e.Version), what)
	case http.StatusTooManyRequests:
		if e.RetryAfter > 0 {
			return fmt.Sprintf("the workspace API is rate limiting requests (%s); it asked to retry after %s", what, e.RetryAfter)
		}
		return fmt.Sprintf("the workspace API is rate limiting requests (%s)", what)
	}
	switch {
	case e.Status >= 300 && e.Status < 400:
		return fmt.Sprintf("the workspace API redirected the request to %q (%s); set the API URL to the final address", e.Location, what)
	case e.Status >= 500:
		return fmt.Sprintf("the workspace API is unavailable (%s)", what)
	}
	return fmt.Sprintf("the workspace API refused the request (%s)", what)
}

// statusLabel renders "401 authentication_error: detail; loc: msg".
func (e *APIError) statusLabel() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.Status))
	if e.Type != "" {
		b.WriteString(" " + e.Type)
	} else if t := http.StatusText(e.Status); t != "" {
		b.WriteString(" " + t)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for i, v := range e.Validation {
		if i == maxValidationShown {
			fmt.Fprintf(&b, "; and %d more", len(e.Validation)-i)
			break
		}
		if i == 0 && e.Detail == "" {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(v.String())
	}
	return b.String()
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Is classifies the error by status, e.g. errors.Is(err, ErrNotFound).
func (e *APIError) Is(target error) bool { return target == e.sentinel() }

func (e *APIError) sentinel() error {
	switch {
	case e.Status == http.StatusUnauthorized:
		return ErrUnauthorized
	case e.Status == http.StatusForbidden:
		return ErrForbidden
	case e.Status == http.StatusNotFound:
		return ErrNotFound
	case e.Status == http.StatusUpgradeRequired:
		return ErrUpgradeRequired
	case e.Status == http.StatusTooManyRequests:
		return ErrRateLimited
	case e.Status == http.StatusRequestTimeout, e.Status >= 500:
		return ErrUnavailable
	}
	return ErrRefused
}

// Temporary reports whether retrying later may succeed (408, 429, 5xx).
func (e *APIError) Temporary() bool {
	s := e.sentinel()
	return s == ErrUnavailable || s == ErrRateLimited
}

// maxDetail bounds the detail text kept from an error body, and
// maxValidationShown the validation errors an error message lists.
const (
	maxDetail          = 300
	maxValidationShown = 5
)

// decodeAPIError builds the APIError for a non-200 answer. body may be
// truncated (the caller reads at most maxBody bytes); token is scrubbed from
// any text kept from the body, in case a server echoes it.
func decodeAPIError(status int, body []byte, truncated bool, token string) *APIError {
	e := &APIError{Status: status}
	var env struct {
		Type   json.RawMessage `json:"type"`
		Detail json.RawMessage `json:"detail"`
		Errors json.RawMessage `json:"errors"`
	}
	if len(body) > 0 && !truncated && json.Unmarshal(body, &env) == nil {
		e.Type = scrub(jsonText(env.Type), token)
		var vs []ValidationError
		if d, ok := jsonString(env.Detail); ok {
			e.Detail = clipDetail(d)
		} else if vs = decodeValidation(env.Detail); vs == nil && len(env.Detail) > 0 && string(env.Detail) != "null" {
			// A detail of an unexpected shape: keep its JSON text.
			e.Detail = clipDetail(string(env.Detail))
		}
		vs = append(vs, decodeValidation(env.Errors)...)
		for i := range vs {
			vs[i].Msg = scrub(vs[i].Msg, token)
			vs[i].Type = scrub(vs[i].Type, token)
			for j := range vs[i].Loc {
				vs[i].Loc[j] = scrub(vs[i].Loc[j], token)
			}
		}
		e.Validation = vs
		e.Detail = scrub(e.Detail, token)
		return e
	}
	// Not JSON, or cut short: keep a printable excerpt so the person has
	// something to go on (a proxy's HTML error page often names the cause).
	switch ex := excerpt(body); {
	case len(body) == 0:
		e.Detail = "empty body"
	case truncated:
		e.Detail = "body too large, starts with: " + scrub(ex, token)
	default:
		e.Detail = "non-JSON body: " + scrub(ex, token)
	}
	return e
}

// decodeValidation decodes a list of {"loc","msg","type"} entries, where
// loc may be a list of strings and numbers, or a single string. It returns
// nil when raw is not such a list.
func decodeValidation(raw json.RawMessage) []ValidationError {
	var items []struct {
		Loc  json.RawMessage `json:"loc"`
		Msg  json.RawMessage `json:"msg"`
		Type json.RawMessage `json:"type"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &items) != nil {
		return nil
	}
	out := make([]ValidationError, 0, len(items))
	for _, it := range items {
		v := ValidationError{Msg: jsonText(it.Msg), Type: jsonText(it.Type)}
		var parts []json.RawMessage
		if s, ok := jsonString(it.Loc); ok {
			v.Loc = []string{s}
		} else if json.Unmarshal(it.Loc, &parts) == nil {
			for _, p := range parts {
				v.Loc = append(v.Loc, jsonText(p))
			}
		}
		out = append(out, v)
	}
	return out
}

// jsonString returns raw's value when raw is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// jsonText renders a JSON scalar as text: strings unquoted, numbers as written.
func jsonText(raw json.RawMessage) string {
	if s, ok := jsonString(raw); ok {
		return clipDetail(s)
	}
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	return clipDetail(string(raw))
}

func clipDetail(s string) string {
	if len(s) > maxDetail {
		return s[:maxDetail] + "..."
	}
	return s
}

// excerpt returns the first maxDetail bytes of body as one printable line.
func excerpt(body []byte) string {
	s := strings.ToValidUTF8(string(body[:min(len(body), maxDetail)]), "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(body) > maxDetail {
		s += "..."
	}
	return s
}

// scrub replaces any occurrence of token in s.
func scrub(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, redacted)
}

// InvalidResponseError says which field of a 200 answer was refused and why.
// errors.Is(err, ErrInvalidResponse) holds.
type InvalidResponseError struct {
	// Field is the JSON field name, or "" for the body as a whole.
	Field string
	// Reason says what is wrong; it never contains a secret value.
	Reason string
}

func (e *InvalidResponseError) Error() string {
	if e.Field == "" {
		return "invalid credentials response from the workspace API: " + e.Reason
	}
	return fmt.Sprintf("invalid credentials response from the workspace API: field %q: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidResponse) hold.
func (e *InvalidResponseError) Is(target error) bool { return target == ErrInvalidResponse }
