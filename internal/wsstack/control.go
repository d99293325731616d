package wsstack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ControlRequest is one fault-injection command for a running stack, as
// sent to ControlHandler (ws-dev's "fault" subcommand builds these). Exactly
// one action is taken per request; fields not set are ignored.
type ControlRequest struct {
	APIFail       *APIFailRequest    `json:"api_fail,omitempty"`
	APIBody       *APIBodyRequest    `json:"api_body,omitempty"`
	APIWrongScope *WrongScopeRequest `json:"api_wrong_scope,omitempty"`
	APILatency    string             `json:"api_latency,omitempty"` // duration
	APIHang       string             `json:"api_hang,omitempty"`    // duration
	APIDown       string             `json:"api_down,omitempty"`    // duration
	TTL           string             `json:"ttl,omitempty"`         // duration
	Revoke        string             `json:"revoke,omitempty"`      // "org/ws" or an access key id
	S3Fault       *S3FaultRequest    `json:"s3_fault,omitempty"`
	Clear         bool               `json:"clear,omitempty"`
}

// APIFailRequest makes the next Count credential requests answer Status.
type APIFailRequest struct {
	Status     int    `json:"status"`
	Count      int    `json:"count"`
	RetryAfter string `json:"retry_after,omitempty"`
}

// APIBodyRequest corrupts the next Count answers: Kind is "malformed" or
// "truncated".
type APIBodyRequest struct {
	Kind  string `json:"kind"`
	Count int    `json:"count"`
}

// WrongScopeRequest makes the next Count answers name another location.
type WrongScopeRequest struct {
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix"`
	Count  int    `json:"count"`
}

// S3FaultRequest is an S3Fault with its stall as a duration string.
type S3FaultRequest struct {
	Ops         []Op   `json:"ops,omitempty"`
	KeyContains string `json:"key_contains,omitempty"`
	Status      int    `json:"status,omitempty"`
	Stall       string `json:"stall,omitempty"`
	Times       int    `json:"times,omitempty"`
}

// ControlStats is what GET /stats answers.
type ControlStats struct {
	API APIStats      `json:"api"`
	S3  map[Op]uint64 `json:"s3"`
}

// ControlHandler serves POST /fault (a ControlRequest) and GET /stats for s.
// It is meant for a loopback port of the dev stack only.
func ControlHandler(s *Stack) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ControlStats{API: s.API.Stats(), S3: s.S3.Counts()})
	})
	mux.HandleFunc("POST /fault", func(w http.ResponseWriter, r *http.Request) {
		var req ControlRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "bad control request: "+err.Error(), http.StatusBadRequest)
			return
		}
		msg, err := s.apply(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, msg)
	})
	return mux
}

// apply carries out one control request and says what it did.
func (s *Stack) apply(req ControlRequest) (string, error) {
	dur := func(name, v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%s: %q is not a duration like 500ms or 10s", name, v)
		}
		return d, nil
	}
	switch {
	case req.Clear:
		if err := s.ClearFaults(); err != nil {
			return "", err
		}
		return fmt.Sprintf("cleared every API and S3 fault: the API answers at once again, "+
			"credentials minted from now on last %v (revoked credentials stay revoked)", s.API.defaultTTL), nil
	case req.APIFail != nil:
		f := req.APIFail
		if f.Status < 400 || f.Status > 599 || f.Count < 1 {
			return "", fmt.Errorf("api_fail: status must be 4xx/5xx and count at least 1")
		}
		fault := Fault{Kind: FaultStatus, Status: f.Status, RetryAfter: f.RetryAfter}
		if fault.RetryAfter == "" && (f.Status == 429 || f.Status == 503) {
			fault.RetryAfter = "1"
		}
		s.API.InjectNext(f.Count, fault)
		return fmt.Sprintf("next %d credential requests answer %d", f.Count, f.Status), nil
	case req.APIBody != nil:
		kinds := map[string]FaultKind{"malformed": FaultMalformedJSON, "truncated": FaultTruncatedJSON}
		k, ok := kinds[req.APIBody.Kind]
		if !ok || req.APIBody.Count < 1 {
			return "", fmt.Errorf("api_body: kind must be malformed or truncated, count at least 1")
		}
		s.API.InjectNext(req.APIBody.Count, Fault{Kind: k})
		return fmt.Sprintf("next %d credential answers are %s JSON", req.APIBody.Count, req.APIBody.Kind), nil
	case req.APIWrongScope != nil:
		f := req.APIWrongScope
		if f.Count < 1 {
			return "", fmt.Errorf("api_wrong_scope: count at least 1")
		}
		s.API.InjectNext(f.Count, Fault{Kind: FaultWrongScope, Bucket: f.Bucket, Prefix: f.Prefix})
		return fmt.Sprintf("next %d credential answers name bucket %q prefix %q", f.Count, f.Bucket, f.Prefix), nil
	case req.APILatency != "":
		d, err := dur("api_latency", req.APILatency)
		if err != nil {
			return "", err
		}
		s.API.SetLatency(d)
		return fmt.Sprintf("credential answers delayed by %v", d), nil
	case req.APIHang != "":
		d, err := dur("api_hang", req.APIHang)
		if err != nil {
			return "", err
		}
		s.API.HangFor(d)
		return fmt.Sprintf("credential requests hang for %v", d), nil
	case req.APIDown != "":
		d, err := dur("api_down", req.APIDown)
		if err != nil {
			return "", err
		}
		s.TakeAPIDown(d)
		return fmt.Sprintf("API refuses connections for %v", d), nil
	case req.TTL != "":
		d, err := dur("ttl", req.TTL)
		if err != nil || d < time.Second {
			return "", fmt.Errorf("ttl: a duration of at least 1s, like 30s")
		}
		s.API.SetTTL(d)
		return fmt.Sprintf("credentials minted from now on last %v", d), nil
	case req.Revoke != "":
		if org, ws, ok := strings.Cut(req.Revoke, "/"); ok {
			return fmt.Sprintf("revoked %d credentials of %s", s.RevokeWorkspace(org, ws), req.Revoke), nil
		}
		if !s.Revoke(req.Revoke) {
			return "", fmt.Errorf("revoke: no credentials with access key id %q", req.Revoke)
		}
		return "revoked " + req.Revoke, nil
	case req.S3Fault != nil:
		f := req.S3Fault
		stall := time.Duration(0)
		if f.Stall != "" {
			var err error
			if stall, err = dur("s3_fault.stall", f.Stall); err != nil {
				return "", err
			}
		}
		if f.Status == 0 && stall == 0 {
			return "", fmt.Errorf("s3_fault: give a status (500, 503) or a stall duration")
		}
		s.S3.Inject(S3Fault{Ops: f.Ops, KeyContains: f.KeyContains, Status: f.Status, Stall: stall, Times: f.Times})
		return "S3 fault added", nil
	}
	return "", fmt.Errorf("empty control request: name one action")
}
