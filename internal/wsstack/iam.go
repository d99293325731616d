package wsstack

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/versity/versitygw/auth"
	"github.com/versity/versitygw/s3err"
)

// account id used in every ARN the emulator mints; it only has to be stable.
const accountID = "000000000000"

// errExpiredToken is what real S3 answers for a session past its expiration.
// The gateway has no such error of its own, so the IAM service returns it
// from DeriveSigningKey and the gateway renders it as is.
var errExpiredToken = s3err.APIError{
	Code:           "ExpiredToken",
	Description:    "The provided token has expired.",
	HTTPStatusCode: http.StatusBadRequest,
}

// session is one set of temporary credentials minted by the API emulator.
type session struct {
	secret  string
	token   string
	expires time.Time
	roleArn string
	arn     string
	org, ws string
}

// sessionIAM is the gateway's IAM service: it knows only the root account and
// the temporary sessions the API emulator minted. Each session carries the ARN
// of its workspace's role, so one bucket policy statement per workspace scopes
// every session of that workspace.
//
// It implements auth.SigningKeyProvider (so temporary keys are checked
// together with their session token and expiry) and auth.PrincipalResolver (so
// bucket policies name role ARNs, as on AWS).
//
// Safe for concurrent use; mu guards every field below it.
type sessionIAM struct {
	root auth.Account
	now  func() time.Time

	mu       sync.Mutex
	sessions map[string]*session // by access key id
	secrets  []string            // every secret key and session token minted, for leak checks
	roles    map[string]bool     // role ARNs that a policy may name
	prunedAt time.Time           // when pruneLocked last scanned sessions
}

var (
	_ auth.IAMService         = (*sessionIAM)(nil)
	_ auth.SigningKeyProvider = (*sessionIAM)(nil)
	_ auth.PrincipalResolver  = (*sessionIAM)(nil)
)

func newSessionIAM(root auth.Account, now func() time.Time) *sessionIAM {
	return &sessionIAM{
		root:     root,
		now:      now,
		sessions: make(map[string]*session),
		roles:    make(map[string]bool),
	}
}

// roleArn names the role every session of org/ws assumes.
func roleArn(org, ws string) string {
	return fmt.Sprintf("arn:aws:iam::%s:role/ws-%s-%s", accountID, org, ws)
}

func (m *sessionIAM) addRole(arn string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.roles[arn] = true
}

// mint creates a session for org/ws that expires after ttl.
func (m *sessionIAM) mint(org, ws string, ttl time.Duration) (access string, s session) {
	access = "ASIA" + randomString(16, base32NoPad)
	s = session{
		secret:  randomString(40, base64Raw),
		token:   "FwoGZXIvYXdzE" + randomString(96, base64Raw),
		expires: m.now().Add(ttl).Truncate(time.Second),
		roleArn: roleArn(org, ws),
		arn:     fmt.Sprintf("arn:aws:sts::%s:assumed-role/ws-%s-%s/%s", accountID, org, ws, access),
		org:     org,
		ws:      ws,
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pruneLocked()
	m.sessions[access] = &s
	m.secrets = append(m.secrets, s.secret, s.token)
	return access, s
}

// revoke forgets the session with this access key id; the gateway then
// answers InvalidAccessKeyId for it. It reports whether the key existed.
func (m *sessionIAM) revoke(access string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.sessions[access]
	delete(m.sessions, access)
	return ok
}

// revokeWorkspace forgets every session of org/ws and returns how many.
func (m *sessionIAM) revokeWorkspace(org, ws string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, s := range m.sessions {
		if s.org == org && s.ws == ws {
			delete(m.sessions, k)
			n++
		}
	}
	return n
}

// pruneEvery is how often minting scans for sessions to forget.
const pruneEvery = time.Minute

// pruneLocked drops sessions long past expiry, so a long-running stack does
// not grow without bound. Recently expired ones stay, to answer ExpiredToken.
// It scans at most once per pruneEvery: a scan on every mint made a fleet's
// refreshes quadratic (1,000 mints over thousands of sessions, under mu).
func (m *sessionIAM) pruneLocked() {
	now := m.now()
	if now.Sub(m.prunedAt) < pruneEvery && !m.prunedAt.After(now) {
		return
	}
	m.prunedAt = now
	cutoff := now.Add(-time.Hour)
	for k, s := range m.sessions {
		if s.expires.Before(cutoff) {
			delete(m.sessions, k)
		}
	}
}

// DeriveSigningKey implements auth.SigningKeyProvider.
func (m *sessionIAM) DeriveSigningKey(access, sessionToken, date, region, service string) ([]byte, auth.Account, error) {
	m.mu.Lock()
	s, ok := m.sessions[access]
	var snapshot session
	if ok {
		snapshot = *s
	}
	m.mu.Unlock()
	if !ok {
		return nil, auth.Account{}, auth.ErrNoSuchUser
	}
	if sessionToken == "" || sessionToken != snapshot.token {
		return nil, auth.Account{}, auth.ErrInvalidSessionToken
	}
	if !m.now().Before(snapshot.expires) {
		return nil, auth.Account{}, errExpiredToken
	}
	acc := auth.Account{
		Access:       access,
		Role:         auth.RoleUser,
		SessionToken: sessionToken,
		IsSession:    true,
		Arn:          snapshot.arn,
		RoleArn:      snapshot.roleArn,
	}
	return deriveKey(snapshot.secret, date, region, service), acc, nil
}

// ResolvePrincipals implements auth.PrincipalResolver: it returns the
// principals that name no known role.
func (m *sessionIAM) ResolvePrincipals(principals []string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var unknown []string
	for _, p := range principals {
		if !m.roles[p] {
			unknown = append(unknown, p)
		}
	}
	return unknown, nil
}

// GetUserAccount implements auth.IAMService. Sessions are not user accounts,
// so only root resolves; everything else is unknown.
func (m *sessionIAM) GetUserAccount(access string) (auth.Account, error) {
	if access == m.root.Access {
		return m.root, nil
	}
	return auth.Account{}, auth.ErrNoSuchUser
}

// ResolveAccounts implements auth.IAMService.
func (m *sessionIAM) ResolveAccounts(accessKeyIDs []string) ([]string, error) {
	var missing []string
	for _, a := range accessKeyIDs {
		if a != m.root.Access {
			missing = append(missing, a)
		}
	}
	return missing, nil
}

// The account management API is not offered: workspaces are configured in Go.

func (m *sessionIAM) CreateAccount(auth.Account) error { return errNoAdmin }
func (m *sessionIAM) UpdateUserAccount(string, auth.MutableProps) error {
	return errNoAdmin
}
func (m *sessionIAM) DeleteUserAccount(string) error { return errNoAdmin }
func (m *sessionIAM) ListUserAccounts() ([]auth.Account, error) {
	return nil, errNoAdmin
}
func (m *sessionIAM) Shutdown() error { return nil }

var errNoAdmin = s3err.GetAPIError(s3err.ErrAdminMethodNotSupported)

func randomString(n int, enc interface{ EncodeToString([]byte) string }) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	return enc.EncodeToString(b)[:n]
}

// deriveKey computes the SigV4 signing key (kSigning) from a secret.
func deriveKey(secret, date, region, service string) []byte {
	sum := func(key []byte, data string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(data))
		return h.Sum(nil)
	}
	k := sum([]byte("AWS4"+secret), date)
	k = sum(k, region)
	k = sum(k, service)
	return sum(k, "aws4_request")
}

var (
	base32NoPad = base32.StdEncoding.WithPadding(base32.NoPadding)
	base64Raw   = base64.RawURLEncoding
)

// minted returns every secret key and session token minted so far.
func (m *sessionIAM) minted() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.secrets...)
}
