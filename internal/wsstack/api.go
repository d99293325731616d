package wsstack

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FaultKind says how an injected fault corrupts a credentials answer.
type FaultKind int

const (
	// FaultStatus answers with Fault.Status and the error envelope.
	FaultStatus FaultKind = iota
	// FaultMalformedJSON answers 200 with a body that is not JSON.
	FaultMalformedJSON
	// FaultTruncatedJSON answers 200 with a valid answer cut in half.
	FaultTruncatedJSON
	// FaultWrongScope answers 200 with real credentials, but naming
	// Fault.Bucket and Fault.Prefix instead of the workspace's own.
	FaultWrongScope
)

// Fault is one injected misbehaviour of the credentials endpoint.
type Fault struct {
	Kind   FaultKind
	Status int // FaultStatus: 401, 403, 426, 429, 500, 502, 504, ...
	// RetryAfter is sent as the Retry-After header when non-empty, in
	// either form the RFC allows ("2" or an HTTP date).
	RetryAfter string
	// Bucket and Prefix are what FaultWrongScope reports.
	Bucket, Prefix string
}

// APIStats counts what the credentials endpoint answered.
type APIStats struct {
	Requests int         `json:"requests"`  // every request that reached the handler
	ByStatus map[int]int `json:"by_status"` // by HTTP status of the answer (0: client gave up)
	Minted   int         `json:"minted"`    // credentials issued (including wrong-scope ones)
}

// CredentialsResponse is the documented 200 body.
type CredentialsResponse struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token"`
	Expiration      string `json:"expiration"`
	Bucket          string `json:"bucket"`
	Prefix          string `json:"prefix"`
	Endpoint        string `json:"endpoint"`
	Region          string `json:"region"`
}

// ErrorEnvelope is the documented error body; Errors is set on 422 only.
type ErrorEnvelope struct {
	Code   int               `json:"code"`
	Detail string            `json:"detail"`
	Type   string            `json:"type"`
	Errors []ValidationError `json:"errors,omitempty"`
}

// ValidationError is one entry of a 422's error list.
type ValidationError struct {
	Loc  []string `json:"loc"`
	Msg  string   `json:"msg"`
	Type string   `json:"type"`
}

// errorTypes are the machine-readable types the API uses per status.
var errorTypes = map[int]string{
	400: "invalid_request",
	401: "authentication_error",
	403: "permission_denied",
	404: "not_found",
	405: "method_not_allowed",
	409: "conflict",
	422: "validation_error",
	426: "upgrade_required",
	429: "rate_limited",
	500: "internal_error",
	502: "bad_gateway",
	503: "service_unavailable",
	504: "gateway_timeout",
}

var errorDetails = map[int]string{
	400: "Invalid request",
	401: "Authentication failed",
	403: "Access forbidden",
	404: "Not found",
	405: "Method not allowed",
	409: "Already exists",
	422: "Validation error",
	426: "Upgrade required: this client version is no longer supported",
	429: "Rate limited",
	500: "Internal server error",
	502: "Bad gateway",
	503: "Service unavailable",
	504: "Gateway timeout",
}

// slugPattern is what the emulator accepts as an org or workspace slug.
var slugPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// API is the workspace API emulator: an http.Handler serving
// GET /api/v1/org/{org}/ws/{ws}/storage/credentials, minting real temporary
// credentials that the embedded S3 server accepts under the workspace prefix
// until they expire. Its fault-injection methods are safe to call from tests
// while requests are in flight.
type API struct {
	iam      *sessionIAM
	endpoint string // S3 endpoint handed out with credentials
	region   string
	// defaultTTL is the TTL the stack started with, which ResetTTL
	// restores; set once by newAPI, read without the lock.
	defaultTTL time.Duration

	mu         sync.Mutex
	workspaces map[string]Workspace       // by "org/ws"
	grants     map[string]map[string]bool // token → granted "org/ws"
	ttl        time.Duration
	latency    time.Duration
	faults     []Fault // consumed front first, one per request
	hangUntil  time.Time
	stats      APIStats
}

var _ http.Handler = (*API)(nil)

func newAPI(iam *sessionIAM, endpoint, region string, ttl time.Duration) *API {
	return &API{
		iam:        iam,
		endpoint:   endpoint,
		region:     region,
		workspaces: make(map[string]Workspace),
		grants:     make(map[string]map[string]bool),
		defaultTTL: ttl,
		ttl:        ttl,
		stats:      APIStats{ByStatus: make(map[int]int)},
	}
}

func (a *API) addWorkspace(w Workspace) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.workspaces[w.slug()] = w
	for _, t := range w.Tokens {
		if a.grants[t] == nil {
			a.grants[t] = make(map[string]bool)
		}
		a.grants[t][w.slug()] = true
	}
}

// SetTTL sets the lifetime of credentials minted from now on.
func (a *API) SetTTL(ttl time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ttl = ttl
}

// ResetTTL undoes SetTTL: credentials minted from now on last as long as
// the stack's Config.TTL says.
func (a *API) ResetTTL() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ttl = a.defaultTTL
}

// SetLatency delays every answer by d (0 turns it off).
func (a *API) SetLatency(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.latency = d
}

// InjectNext makes the next n credential requests misbehave as f says.
func (a *API) InjectNext(n int, f Fault) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range n {
		a.faults = append(a.faults, f)
	}
}

// FailNext makes the next n credential requests fail with status. A 429 or
// 503 carries Retry-After: 1.
func (a *API) FailNext(n, status int) {
	f := Fault{Kind: FaultStatus, Status: status}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		f.RetryAfter = "1"
	}
	a.InjectNext(n, f)
}

// HangFor makes every request that arrives in the next d hang until d has
// passed (or the client gives up), as an API behind a stuck load balancer.
func (a *API) HangFor(d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hangUntil = time.Now().Add(d)
}

// ClearFaults drops pending faults, latency and hangs. It leaves the TTL
// alone (see ResetTTL); Stack.ClearFaults undoes every fault.
func (a *API) ClearFaults() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.faults = nil
	a.latency = 0
	a.hangUntil = time.Time{}
}

// Stats returns a copy of the counters.
func (a *API) Stats() APIStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.ByStatus = make(map[int]int, len(a.stats.ByStatus))
	for k, v := range a.stats.ByStatus {
		s.ByStatus[k] = v
	}
	return s
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.stats.Requests++
	latency, hangUntil := a.latency, a.hangUntil
	a.mu.Unlock()

	if wait := time.Until(hangUntil); wait > 0 {
		select {
		case <-time.After(wait):
		case <-r.Context().Done():
			a.count(0)
			return
		}
	}
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			a.count(0)
			return
		}
	}

	org, ws, ok := parseCredentialsPath(r.URL.Path)
	if !ok {
		a.writeError(w, http.StatusNotFound, "No such endpoint: "+r.URL.Path, nil)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		a.writeError(w, http.StatusMethodNotAllowed, "Method "+r.Method+" not allowed; use GET", nil)
		return
	}
	if f, ok := a.nextFault(); ok && f.Kind == FaultStatus {
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		a.writeError(w, f.Status, errorDetails[f.Status]+" (injected)", nil)
		return
	} else if ok {
		a.serveFaulty(w, org, ws, f)
		return
	}
	if verrs := validateSlugs(org, ws); len(verrs) > 0 {
		a.writeError(w, http.StatusUnprocessableEntity, "Validation error", verrs)
		return
	}
	wsp, status, detail := a.authorize(r, org, ws)
	if status != http.StatusOK {
		a.writeError(w, status, detail, nil)
		return
	}
	a.writeCredentials(w, a.mint(wsp, wsp.Bucket, wsp.Prefix))
}

// authorize checks the bearer token against org/ws and returns the
// workspace, or the status and detail to refuse with.
func (a *API) authorize(r *http.Request, org, ws string) (Workspace, int, string) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	token = strings.TrimSpace(token)
	if !ok || token == "" {
		return Workspace{}, http.StatusUnauthorized, "Authentication failed: missing bearer token"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	granted, known := a.grants[token]
	if !known {
		return Workspace{}, http.StatusUnauthorized, "Authentication failed: invalid or expired token"
	}
	slug := org + "/" + ws
	wsp, exists := a.workspaces[slug]
	if !exists {
		if !a.orgExistsLocked(org) {
			return Workspace{}, http.StatusNotFound, fmt.Sprintf("Organization %q not found", org)
		}
		return Workspace{}, http.StatusNotFound, fmt.Sprintf("Workspace %q not found in organization %q", ws, org)
	}
	if !granted[slug] {
		return Workspace{}, http.StatusForbidden, fmt.Sprintf("Access to workspace %s is forbidden for this token", slug)
	}
	return wsp, http.StatusOK, ""
}

func (a *API) orgExistsLocked(org string) bool {
	for _, w := range a.workspaces {
		if w.Org == org {
			return true
		}
	}
	return false
}

func (a *API) nextFault() (Fault, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.faults) == 0 {
		return Fault{}, false
	}
	f := a.faults[0]
	a.faults = a.faults[1:]
	return f, true
}

// serveFaulty answers a body-corrupting fault. It needs a real workspace for
// realistic credentials, so an unknown one falls back to a fixed answer.
func (a *API) serveFaulty(w http.ResponseWriter, org, ws string, f Fault) {
	a.mu.Lock()
	wsp, ok := a.workspaces[org+"/"+ws]
	a.mu.Unlock()
	if !ok {
		wsp = Workspace{Org: org, WS: ws, Bucket: "unknown", Prefix: org + "/" + ws + "/"}
	}
	switch f.Kind {
	case FaultWrongScope:
		a.writeCredentials(w, a.mint(wsp, f.Bucket, f.Prefix))
	case FaultMalformedJSON:
		a.writeBody(w, http.StatusOK, []byte(`{"access_key_id": ASIA, "secret_access_key": }`))
	case FaultTruncatedJSON:
		body, _ := json.Marshal(a.mint(wsp, wsp.Bucket, wsp.Prefix))
		a.writeBody(w, http.StatusOK, body[:len(body)/2])
	default:
		a.writeError(w, http.StatusInternalServerError, "unknown injected fault", nil)
	}
}

func (a *API) mint(w Workspace, bucket, prefix string) CredentialsResponse {
	a.mu.Lock()
	ttl := a.ttl
	a.stats.Minted++
	a.mu.Unlock()
	access, s := a.iam.mint(w.Org, w.WS, ttl)
	return CredentialsResponse{
		AccessKeyID:     access,
		SecretAccessKey: s.secret,
		SessionToken:    s.token,
		Expiration:      s.expires.UTC().Format(time.RFC3339),
		Bucket:          bucket,
		Prefix:          prefix,
		Endpoint:        a.endpoint,
		Region:          a.region,
	}
}

func (a *API) writeCredentials(w http.ResponseWriter, c CredentialsResponse) {
	body, err := json.Marshal(c)
	if err != nil {
		a.writeError(w, http.StatusInternalServerError, "encode credentials", nil)
		return
	}
	a.writeBody(w, http.StatusOK, body)
}

func (a *API) writeError(w http.ResponseWriter, status int, detail string, verrs []ValidationError) {
	typ := errorTypes[status]
	if typ == "" {
		typ = "error"
	}
	body, _ := json.Marshal(ErrorEnvelope{Code: status, Detail: detail, Type: typ, Errors: verrs})
	a.writeBody(w, status, body)
}

func (a *API) writeBody(w http.ResponseWriter, status int, body []byte) {
	a.count(status)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}

// count records an answer; status 0 means the client went away first.
func (a *API) count(status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stats.ByStatus[status]++
}

// parseCredentialsPath extracts org and ws from the endpoint's path. Slugs
// are returned raw (validated later) so that a malformed one gets a 422,
// not a 404.
func parseCredentialsPath(path string) (org, ws string, ok bool) {
	rest, ok := strings.CutPrefix(path, "/api/v1/org/")
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutSuffix(rest, "/storage/credentials")
	if !ok {
		return "", "", false
	}
	org, ws, ok = strings.Cut(rest, "/ws/")
	if !ok || strings.Contains(ws, "/ws/") {
		return "", "", false
	}
	return org, ws, true
}

func validateSlugs(org, ws string) []ValidationError {
	var errs []ValidationError
	for _, f := range []struct{ name, value string }{{"org", org}, {"ws", ws}} {
		if !slugPattern.MatchString(f.value) {
			errs = append(errs, ValidationError{
				Loc:  []string{"path", f.name},
				Msg:  "must be 1-63 lowercase letters, digits or hyphens, starting and ending with a letter or digit",
				Type: "value_error.slug",
			})
		}
	}
	return errs
}
