// Package creds obtains, validates and refreshes the temporary storage
// credentials of one workspace, and hands them to the AWS SDK.
//
// # The conversation with the workspace API
//
// A Client makes one kind of request:
//
//	GET {APIURL}/api/v1/org/{org}/ws/{ws}/storage/credentials
//	Authorization: Bearer <token>
//	Accept: application/json
//	User-Agent: mount-ws/<version>
//
// The token comes from a TokenSource: the WS_TOKEN environment variable, or
// a token file (default ~/.config/mount-ws/token) that is read again before
// every request, so a rotated token takes effect without a remount. A token
// file readable by group or others is used with a warning. Messages say
// where the token came from, never what it is.
//
// The API URL must be https, except for a loopback host or when
// Config.AllowInsecureHTTP is set; redirects are refused. ORG and WS slugs
// are checked locally (ParseSlug) before any request.
//
// A 200 answer is validated field by field: every field present and a
// string; the expiration an RFC 3339 time in the future; the bucket a valid
// S3 bucket name; the prefix normalised by NormalizePrefix or refused; the
// endpoint an https URL (same loopback/insecure rule). Bodies over
// MaxBodySize are refused. A refusal is an *InvalidResponseError naming the
// field.
//
// A non-200 answer becomes an *APIError carrying the status and the
// decoded error envelope (type, detail, validation errors); a body that is
// not JSON still yields a readable excerpt. Every error of this package is
// classified by a sentinel (ErrUnauthorized, ErrForbidden, ErrNotFound,
// ErrUpgradeRequired, ErrRateLimited, ErrUnavailable, ErrInvalidResponse,
// ...) for errors.Is, so callers can choose an exit code without matching
// text; IsTemporary tells whether retrying can help.
//
// Client.FetchWithRetry retries temporary failures within a time bound:
// 429 after its Retry-After delay (seconds or HTTP date), 500, 502, 503,
// 504, timeouts and connection errors after an exponential backoff with full
// jitter. Other 4xx answers fail at once.
//
// # The provider
//
// A Provider implements aws.CredentialsProvider for one workspace.
// NewProvider fetches the first credentials with a short retry bound
// (Config.MountRetryBound: a person is waiting at a terminal) and pins
// their Scope: bucket, prefix, endpoint and region.
//
// Retrieve never waits on the API while valid credentials are held. A
// background goroutine refreshes them ahead of expiry: when a quarter of
// their lifetime or five minutes remain, whichever comes first (but never
// earlier than half-way), moved later by a random part of up to 20% of
// that window so that many mounts do not call the API in the same second
// (later, not earlier: the half-way bound holds for every lifetime).
// Only that goroutine calls the API after the first fetch, so concurrent
// callers always share one refresh.
//
// If a refresh fails, the held credentials keep being served while they are
// valid, and the refresh is retried with exponential backoff and full
// jitter, capped so that more attempts happen before they expire. Once they
// have expired (or were rejected by the storage) and the API still fails,
// Retrieve waits up to Config.ExpiredWaitBound and then fails with an error
// wrapping ErrExpired and the last refresh error. While calls wait, the
// refresh is retried within a second (or after the API's Retry-After), so
// they get fresh credentials about a second after the API is back, however
// long the backoff had grown. The filesystem turns that error into EIO.
// One line is logged when refreshes start failing, one when the
// credentials become unusable, and one on recovery, not one per request.
// Waiting calls are not silent either: once a call has waited a second, a
// warning says so, with the reason and the last refresh error (one per
// expiry or rejection, however many calls wait), and a line follows when
// credentials are available again.
//
// Expiry is judged on the wall clock: a machine suspended past the
// expiration does not sign with dead keys on resume, and credentials are
// handed out only until shortly before they expire (10 s, or a tenth of the
// lifetime for short-lived ones).
//
// # Pinned location
//
// A refresh that names another bucket or prefix is refused
// (ErrScopeChanged, logged as an error); the held credentials are used until
// they expire, and the refresh keeps being retried. A refresh that names
// only another endpoint or region is accepted, with one warning per new
// value: the S3 client was built with the pinned endpoint and region, which
// stay in use until a remount. Endpoints are compared in normalised form,
// so cosmetic differences (case, trailing slash) do not count as a change.
//
// # Reactive refresh
//
// Provider.AddReactiveRefresh is an SDK API option that retries a request
// once, with fresh credentials, when the storage rejects the ones that
// signed it (ExpiredToken, InvalidAccessKeyId, ..., and ambiguous signals
// such as AccessDenied or a connection reset under the rules documented on
// the method). Provider.Invalidate is the underlying operation. The
// package does not import the S3 service client.
//
// # Observability
//
// Provider.Stats reports refreshes, failures by FailureKind, the API's
// answers by HTTP status (0 for none: connection refused, timeout), the
// Retrieve calls that waited for credentials (how many, for how long, how
// many wait now), invalidations, reactive retries and time to expiry.
// Logs go to the slog.Logger in Config; Secret values (tokens, secret
// keys, session tokens) print as REDACTED everywhere, and access key IDs
// are logged by their last four characters only.
package creds
