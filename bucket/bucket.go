package bucket

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxConns               = 64
	DefaultRetryAttempts          = 5       // the SDK's default is 3
	DefaultMultipartCopyThreshold = 5 << 30 // the largest object CopyObject may copy
	DefaultCopyPartSize           = 512 << 20
	DefaultListMaxKeys            = 1000 // the most S3 returns per page
)

// HTTP transport timeouts. There is no overall request timeout: bodies of
// large GETs stream for as long as the reader consumes them, and callers
// bound operations with their context.
const (
	dialTimeout           = 5 * time.Second
	tlsHandshakeTimeout   = 10 * time.Second
	responseHeaderTimeout = 2 * time.Minute // a CompleteMultipartUpload or server-side copy may be slow to answer
	idleConnTimeout       = 90 * time.Second
	transportBufferSize   = 64 << 10
)

// Config says where the workspace lives and how to reach it.
type Config struct {
	// Bucket is the bucket name; required.
	Bucket string
	// Prefix is the workspace prefix: "" or ending in "/".
	Prefix string
	// Endpoint is the S3 endpoint URL ("https://s3.example.com"); ""
	// means AWS's regional endpoint. A custom endpoint is addressed
	// path-style (endpoint/bucket/key).
	Endpoint string
	// Region is the signing region; required.
	Region string
	// Credentials signs every request; required. It is used as is, not
	// wrapped in aws.CredentialsCache (see creds.Provider).
	Credentials aws.CredentialsProvider
	// APIOptions are added to every operation's middleware stack, such as
	// creds.Provider.AddReactiveRefresh.
	APIOptions []func(*middleware.Stack) error
	// Retryer overrides the default retryer: the SDK's standard retryer
	// with DefaultRetryAttempts attempts and no retry quota.
	Retryer func() aws.Retryer
	// Logger receives the few things worth logging (an incomplete upload
	// that could not be aborted, a listed key outside the prefix). nil
	// discards them.
	Logger *slog.Logger
	// MaxConns is how many idle HTTP connections to the endpoint are kept
	// for reuse (default DefaultMaxConns). It is not a cap on open
	// connections: a caller holding many GET bodies open must not starve
	// other requests.
	MaxConns int
	// MultipartCopyThreshold is the size above which Copy uses a multipart
	// copy (default DefaultMultipartCopyThreshold, the limit of CopyObject);
	// tests lower it.
	MultipartCopyThreshold int64
	// CopyPartSize is the part size of a multipart copy (default
	// DefaultCopyPartSize; at least 5 MiB, and raised to keep within
	// 10,000 parts).
	CopyPartSize int64
	// ListMaxKeys is the page size asked of List (default and maximum
	// DefaultListMaxKeys); tests lower it to exercise pagination.
	ListMaxKeys int
	// Observer, if set, is told about every request attempt and every
	// body byte (metrics).
	Observer Observer
}

// Bucket is an S3 client scoped to one bucket and prefix. It is safe for
// concurrent use.
type Bucket struct {
	s3     *s3.Client
	bucket string
	keys   keyspace
	log    *slog.Logger

	copyThreshold int64
	copyPartSize  int64
	listMaxKeys   int32
}

// New builds a Bucket. It makes no request: scoped credentials cannot
// check that the bucket exists.
//
// The S3 client it builds is tuned for many parallel requests to one host:
//
//   - HTTP: an http.Transport keeping up to MaxConns idle connections to
//     the host (the SDK's default keeps 10, Go's 2: more parallel ranged
//     GETs than that open and close connections all the time, each new
//     one a handshake and a TCP slow start), no transparent gzip (S3 bodies
//     are served as stored; a Range applies to them as stored), HTTP/1.1
//     (S3 does not speak HTTP/2), 64 KiB socket buffers, and connect, TLS
//     and response-header timeouts, but no overall timeout.
//   - Checksums: RequestChecksumCalculation and ResponseChecksumValidation
//     are "when required". By default the SDK computes a CRC32 of every
//     PUT and part body (one more pass over the data, and over plain HTTP a
//     second read of the body before sending), and asks for and checks
//     full-object checksums on GET. A ranged GET, the common read here,
//     cannot be checked against a full-object checksum anyway, and some
//     servers return the full-object checksum with a range. Integrity in
//     transit comes from TLS; consistency across reads from the ETag
//     (Get's If-Match).
//   - Payload signing: SigV4 signs a SHA-256 of each body by default, one
//     pass of SHA-256 over every byte uploaded, even over HTTPS when no
//     checksum is computed. Put, Upload's parts and nothing else are sent
//     with UNSIGNED-PAYLOAD instead (S3 and versitygw accept it; see
//     TestRequestHeaders): the method, key, headers and metadata are still
//     signed, but the body is not, so whoever can alter the traffic could
//     change it undetected. Over HTTPS, TLS rules that out (and detects
//     corruption); over plain HTTP, which creds allows only to loopback
//     or when insecure HTTP is asked for, a corrupted body would go
//     unnoticed. For 1 GiB uploaded that is about 0.8 s of CPU saved on
//     this kind of machine (SHA-256 runs at about 1.3 GB/s per core with
//     SHA-NI), on 2 cores shared with the FUSE server and the kernel.
//   - Expect: 100-continue is never sent (ContinueHeaderThresholdBytes
//     -1; the SDK sends it on PUTs over 2 MiB). It costs a round trip per
//     PUT at best, and some clients stall on it for a second against
//     versitygw. (This SDK did not stall against the local gateway: a
//     3 MiB PUT took about 25 ms with or without the header.) What it
//     would save, a body sent to a server that refuses the request, is a
//     rare failure.
//   - Retries: the SDK's standard retryer (exponential backoff with
//     jitter; retries 5xx, SlowDown and connection errors) with 5 attempts
//     and no client-side retry quota: the quota protects a fleet from retry
//     storms, but one mount issuing parallel prefetches would exhaust it
//     under throttling and fail reads that a backoff would have saved.
func New(cfg Config) (*Bucket, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("bucket: no bucket name")
	}
	if cfg.Region == "" {
		return nil, errors.New("bucket: no region")
	}
	if cfg.Credentials == nil {
		return nil, errors.New("bucket: no credentials provider")
	}
	keys, err := newKeyspace(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("bucket: %w", err)
	}
	b := &Bucket{
		bucket:        cfg.Bucket,
		keys:          keys,
		log:           cfg.Logger,
		copyThreshold: cfg.MultipartCopyThreshold,
		copyPartSize:  max(cfg.CopyPartSize, MinPartSize),
		listMaxKeys:   DefaultListMaxKeys,
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.copyThreshold <= 0 {
		b.copyThreshold = DefaultMultipartCopyThreshold
	}
	if cfg.CopyPartSize <= 0 {
		b.copyPartSize = DefaultCopyPartSize
	}
	if cfg.ListMaxKeys > 0 && cfg.ListMaxKeys < DefaultListMaxKeys {
		b.listMaxKeys = int32(cfg.ListMaxKeys)
	}
	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	retryer := cfg.Retryer
	if retryer == nil {
		retryer = defaultRetryer
	}
	var transport http.RoundTripper = newTransport(maxConns)
	apiOptions := append([]func(*middleware.Stack) error(nil), cfg.APIOptions...)
	if cfg.Observer != nil {
		transport = countingTransport{next: transport, o: cfg.Observer}
		apiOptions = append(apiOptions, observeAttempts{cfg.Observer}.add)
	}
	opts := s3.Options{
		AppID:                      "mount-ws", // in the User-Agent, for server logs
		Region:                     cfg.Region,
		Credentials:                credentialsProvider{p: cfg.Credentials},
		APIOptions:                 apiOptions,
		HTTPClient:                 &http.Client{Transport: transport},
		Retryer:                    retryer(),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		DisableLogOutputChecksumValidationSkipped: true,
		ContinueHeaderThresholdBytes:              -1,
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
		opts.UsePathStyle = true
	}
	b.s3 = s3.New(opts)
	return b, nil
}

// defaultRetryer is the SDK's standard retryer with more attempts and no
// retry quota; see New.
func defaultRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = DefaultRetryAttempts
		o.RateLimiter = ratelimit.None
	})
}

func newTransport(maxConns int) *http.Transport {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          maxConns,
		MaxIdleConnsPerHost:   maxConns,
		IdleConnTimeout:       idleConnTimeout,
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second, // unused: Expect is never sent
		DisableCompression:    true,
		WriteBufferSize:       transportBufferSize,
		ReadBufferSize:        transportBufferSize,
	}
}
