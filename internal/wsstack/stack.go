package wsstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/versity/versitygw/auth"
)

// DefaultBucket holds every workspace whose Bucket is left empty.
const DefaultBucket = "workspaces"

// Workspace is one org/ws the emulator knows, where its data lives, and the
// tokens granted access to it.
type Workspace struct {
	Org, WS string
	// Bucket defaults to DefaultBucket.
	Bucket string
	// Prefix defaults to "org/ws/"; it always ends in "/".
	Prefix string
	// Tokens are the bearer tokens granted this workspace. One token may be
	// granted several workspaces by listing it in each.
	Tokens []string
}

func (w Workspace) slug() string { return w.Org + "/" + w.WS }

func (w Workspace) withDefaults() (Workspace, error) {
	if verrs := validateSlugs(w.Org, w.WS); len(verrs) > 0 {
		return w, fmt.Errorf("workspace %q: %s %s", w.slug(), strings.Join(verrs[0].Loc, "."), verrs[0].Msg)
	}
	if w.Bucket == "" {
		w.Bucket = DefaultBucket
	}
	if w.Prefix == "" {
		w.Prefix = w.slug() + "/"
	}
	if !strings.HasSuffix(w.Prefix, "/") || strings.HasPrefix(w.Prefix, "/") {
		return w, fmt.Errorf("workspace %s: prefix %q must end in / and not start with one", w.slug(), w.Prefix)
	}
	return w, nil
}

// Config describes a local workspace stack.
type Config struct {
	// DataDir holds the gateway's objects and metadata. It must be absolute:
	// the gateway's posix backend changes the process's working directory.
	DataDir string
	// S3Addr and APIAddr are the loopback addresses to serve S3 (through
	// the counting proxy) and the workspace API on; "" picks free ports.
	S3Addr, APIAddr string
	// Region defaults to us-east-1.
	Region string
	// TTL is the lifetime of minted credentials; default one hour.
	TTL time.Duration
	// Workspaces to create at start; more can be added with AddWorkspace.
	Workspaces []Workspace
}

// Stack is a running local workspace: the embedded S3 gateway, the counting
// and fault-injecting S3 proxy in front of it, and the workspace API
// emulator. Only one Stack may run per process (a limit of the gateway):
// tests share one per test binary through TestMain.
type Stack struct {
	// API is the workspace API emulator; its methods inject API faults.
	API *API
	// S3 is the proxy every client reaches the gateway through; its methods
	// inject S3 faults and count requests by operation.
	S3 *S3Proxy

	region  string
	iam     *sessionIAM
	gw      *gateway
	s3srv   *loopbackServer
	apisrv  *loopbackServer
	root    *s3.Client // root account, straight to the gateway
	rootTr  *http.Transport
	addWsMu sync.Mutex // serialises AddWorkspace's policy rewrite
	byBkt   map[string][]Workspace
}

// Start brings the stack up and creates the configured workspaces.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = time.Hour
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil || cfg.DataDir == "" {
		return nil, fmt.Errorf("stack data dir %q: must name a directory", cfg.DataDir)
	}
	root := auth.Account{
		Access: "ROOT" + randomString(16, base32NoPad),
		Secret: randomString(40, base64Raw),
		Role:   auth.RoleAdmin,
	}
	s := &Stack{region: cfg.Region, iam: newSessionIAM(root, time.Now), byBkt: make(map[string][]Workspace)}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.gw, err = startGateway(dataDir, "", cfg.Region, s.iam); err != nil {
		return nil, err
	}
	gwURL, _ := url.Parse("http://" + s.gw.addr)
	s.S3 = newS3Proxy(gwURL)
	if s.s3srv, err = listen(cfg.S3Addr, s.S3); err != nil {
		return nil, fmt.Errorf("s3 endpoint: %w", err)
	}
	s.API = newAPI(s.iam, s.s3srv.url(), cfg.Region, cfg.TTL)
	if s.apisrv, err = listen(cfg.APIAddr, s.API); err != nil {
		return nil, fmt.Errorf("workspace api: %w", err)
	}
	s.rootTr = http.DefaultTransport.(*http.Transport).Clone()
	s.root = s3.New(s3.Options{
		HTTPClient:   &http.Client{Transport: s.rootTr},
		BaseEndpoint: aws.String(gwURL.String()),
		Region:       cfg.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(root.Access, root.Secret, ""),
	})
	for _, w := range cfg.Workspaces {
		if err := s.AddWorkspace(ctx, w); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// APIURL is the workspace API's base URL (what mount-ws --api-url takes).
func (s *Stack) APIURL() string { return s.apisrv.url() }

// S3URL is the S3 endpoint handed out with credentials (the proxy).
func (s *Stack) S3URL() string { return s.s3srv.url() }

// Region is the S3 region handed out with credentials.
func (s *Stack) Region() string { return s.region }

// RootClient is an S3 client with the gateway's root account, going straight
// to the gateway (not counted, no faults): for seeding data and for tests
// that check what really is in a bucket.
func (s *Stack) RootClient() *s3.Client { return s.root }

// AddWorkspace registers w with the API emulator, creates its bucket if
// needed and rewrites the bucket's policy to scope w's sessions to its
// prefix. Adding a workspace that exists again updates its tokens.
func (s *Stack) AddWorkspace(ctx context.Context, w Workspace) error {
	w, err := w.withDefaults()
	if err != nil {
		return err
	}
	s.addWsMu.Lock()
	defer s.addWsMu.Unlock()
	if err := s.ensureBucket(ctx, w.Bucket); err != nil {
		return err
	}
	// The role must exist before a policy may name it.
	s.iam.addRole(roleArn(w.Org, w.WS))
	peers := []Workspace{w}
	for _, p := range s.byBkt[w.Bucket] {
		if p.slug() != w.slug() {
			peers = append(peers, p)
		}
	}
	policy, err := bucketPolicy(w.Bucket, peers)
	if err != nil {
		return fmt.Errorf("bucket policy for %s: %w", w.Bucket, err)
	}
	if _, err := s.root.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{
		Bucket: aws.String(w.Bucket),
		Policy: aws.String(string(policy)),
	}); err != nil {
		return fmt.Errorf("put bucket policy for %s: %w", w.Bucket, err)
	}
	s.byBkt[w.Bucket] = peers
	s.API.addWorkspace(w)
	return nil
}

func (s *Stack) ensureBucket(ctx context.Context, bucket string) error {
	_, err := s.root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode() == "BucketAlreadyOwnedByYou" || apiErr.ErrorCode() == "BucketAlreadyExists") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// Revoke invalidates the credentials with this access key id before they
// expire; the S3 server refuses them from then on (InvalidAccessKeyId). It
// reports whether the key was known.
func (s *Stack) Revoke(accessKeyID string) bool { return s.iam.revoke(accessKeyID) }

// RevokeWorkspace invalidates every credential issued for org/ws so far and
// returns how many there were.
func (s *Stack) RevokeWorkspace(org, ws string) int { return s.iam.revokeWorkspace(org, ws) }

// MintedSecrets returns every secret access key and session token the API
// has handed out, expired or not, so that tests can check none of them
// leaked into a log or a file.
func (s *Stack) MintedSecrets() []string { return s.iam.minted() }

// TakeAPIDown closes the workspace API's listener and connections for d:
// clients get "connection refused" until it listens again on the same
// address. For an API that accepts but never answers, use API.HangFor.
func (s *Stack) TakeAPIDown(d time.Duration) error { return s.apisrv.down(d) }

// ClearFaults undoes every fault injected through s.API, s.S3 or
// TakeAPIDown: pending and standing API faults (failures, bad bodies,
// latency, hangs), a TTL changed with API.SetTTL (back to Config.TTL), an
// API outage (the API listens again at once) and every S3 fault. Revoked
// credentials stay revoked; clients fetch new ones. It is safe to call at
// any time, and again.
func (s *Stack) ClearFaults() error {
	s.API.ClearFaults()
	s.API.ResetTTL()
	s.S3.ClearFaults()
	if err := s.apisrv.up(); err != nil {
		return fmt.Errorf("end the API outage: %w", err)
	}
	return nil
}

// Close stops everything. Data stays in the data dir.
func (s *Stack) Close() error {
	var errs []error
	for _, srv := range []*loopbackServer{s.apisrv, s.s3srv} {
		if srv != nil {
			errs = append(errs, srv.close())
		}
	}
	// Idle keep-alive connections would hold up the gateway's shutdown.
	if s.S3 != nil {
		s.S3.transport.CloseIdleConnections()
	}
	if s.rootTr != nil {
		s.rootTr.CloseIdleConnections()
	}
	if s.gw != nil {
		errs = append(errs, s.gw.close())
	}
	return errors.Join(errs...)
}

// LoadOrCreateToken returns the token kept in the file at path, creating
// one (prefix plus 40 random hex digits, mode 0600) when there is none, so
// a dev stack keeps one token across restarts of its data dir.
func LoadOrCreateToken(path, prefix string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read token file: %w", err)
	}
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	t := prefix + hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write token file: %w", err)
	}
	return t, nil
}
