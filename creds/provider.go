package creds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// ProviderSource is the Source of the aws.Credentials a Provider returns.
const ProviderSource = "MountWSWorkspaceProvider"

// Refresh schedule constants; see the package documentation.
const (
	refreshWindowMin = 5 * time.Minute  // refresh at least this long before expiry...
	expiryMarginMax  = 10 * time.Second // stop handing out credentials this long before expiry (at most)
	loopMaxSleep     = 30 * time.Second // the loop re-reads the wall clock at least this often
	refreshBackoff   = time.Second      // background retry backoff: base...
	refreshBackoffMx = 30 * time.Second // ...and cap
	waitWarnAfter    = time.Second      // a Retrieve waiting this long logs a warning (once per episode)
)

// Provider hands out workspace credentials to the AWS SDK and keeps them
// fresh in the background. It implements aws.CredentialsProvider; install it
// directly as s3.Options.Credentials: wrapping it in aws.CredentialsCache adds
// nothing, and the cache would keep serving credentials after Invalidate.
//
// All methods are safe for concurrent use. A Provider owns one goroutine,
// started by NewProvider and stopped by Close.
type Provider struct {
	client *Client
	log    *slog.Logger
	clock  Clock
	scope  Scope         // pinned by NewProvider; never changes
	wait   time.Duration // ExpiredWaitBound

	backoffBase, backoffMax time.Duration // background retry backoff
	maxSleep                time.Duration // longest loop sleep before re-reading the wall clock
	warnAfter               time.Duration // how long a Retrieve waits before it asks for a warning

	kick   chan struct{}      // capacity 1: asks the loop to look at the state now
	cancel context.CancelFunc // stops the loop
	done   chan struct{}      // closed when the loop has returned

	reactiveRetries atomic.Uint64 // requests retried by the reactive middleware

	// mu guards the fields below. It is never held across a network call
	// or a sleep. No other lock is taken while holding it.
	mu           sync.Mutex
	cur          *entry        // the credentials handed out; never nil
	prev         *entry        // the credentials cur replaced, or nil
	changed      chan struct{} // closed and replaced when cur changes or on Close
	lastErr      error         // the last refresh error; nil after a success
	failingSince time.Time     // first failure of the current streak; zero when healthy
	outageLogged bool          // the "expired and cannot refresh" line was logged for this streak
	driftWarned  Scope         // the endpoint/region change last warned about
	lastProbe    time.Time     // last refresh forced by an ambiguous rejection (see rejected)
	waitFor      *entry        // the unusable credentials of the wait episode; nil if none (see noteWait)
	waitSince    time.Time     // when the first call of the episode started waiting
	waitWarned   bool          // the "waiting for workspace credentials" line was logged for the episode
	closed       bool
	stats        Stats // Failures map owned here; copied by Stats()
}

// entry is one set of credentials with its refresh schedule, all on the
// wall clock.
type entry struct {
	creds     Credentials
	fetched   time.Time
	refreshAt time.Time // jittered moment the background refresh starts
	staleAt   time.Time // unjittered start of the refresh window
	validTo   time.Time // last moment the credentials are handed out
	invalid   bool      // guarded by Provider.mu: storage rejected them (Invalidate)
}

// newEntry computes the schedule for credentials fetched at now. With
// lifetime L the refresh window is max(L/4, 5 min), capped at L/2; the
// refresh starts within the first fifth of the window, at random, so many
// mounts do not call the API in the same second. The jitter moves it later,
// never earlier: a refresh never comes before half the lifetime, which is
// what keeps a fleet with short-lived credentials from calling the API more
// than twice per lifetime. Credentials are handed out until min(10 s, L/10)
// before they expire, so a request signed with them reaches the storage
// before they expire.
func newEntry(c Credentials, now time.Time) *entry {
	life := c.Expiration.Sub(now)
	window := min(max(life/4, refreshWindowMin), life/2)
	margin := min(expiryMarginMax, life/10)
	staleAt := c.Expiration.Add(-window)
	return &entry{
		creds:     c,
		fetched:   now,
		staleAt:   staleAt,
		refreshAt: staleAt.Add(jitterUpTo(window / 5)),
		validTo:   c.Expiration.Add(-margin),
	}
}

// usable reports whether e may be handed out at now. Caller holds mu.
func (e *entry) usable(now time.Time) bool { return !e.invalid && now.Before(e.validTo) }

func (e *entry) aws() aws.Credentials {
	return aws.Credentials{
		AccessKeyID:     e.creds.AccessKeyID,
		SecretAccessKey: e.creds.SecretAccessKey.Reveal(),
		SessionToken:    e.creds.SessionToken.Reveal(),
		Source:          ProviderSource,
		CanExpire:       true,
		Expires:         e.creds.Expiration,
	}
}

// Stats is a snapshot of a Provider's counters, for metrics and status output.
type Stats struct {
	// Refreshes counts successful fetches, the initial one included.
	Refreshes uint64
	// Failures counts failed refresh attempts by kind. Unlike APIAnswers,
	// it leaves out the failed attempts of the first fetch (NewProvider
	// returns them), and counts answers that were refused although they
	// came with status 200 (FailureInvalidResponse, FailureScopeChanged).
	Failures map[FailureKind]uint64
	// APIAnswers counts the requests made to the workspace API by the
	// HTTP status of their answers: the first fetch and its retries, and
	// every refresh attempt. Status 0 counts requests that got no answer
	// (connection refused or reset, timeout); a request abandoned because
	// its context ended (Close, or the ctx given to NewProvider) is not
	// counted.
	APIAnswers map[int]uint64
	// Waits counts Retrieve calls that found no usable credentials (expired
	// or rejected) and had to wait for fresh ones, however the wait ended.
	// WaitTime is the total time they waited, on the Config's Clock; a wait
	// is added when it ends. Waiting is how many calls wait now.
	Waits    uint64
	WaitTime time.Duration
	Waiting  int
	// Invalidations counts credentials dropped because storage rejected them.
	Invalidations uint64
	// ReactiveRetries counts storage requests retried after a rejection.
	ReactiveRetries uint64
	// ScopeDrifts counts refreshes that named another endpoint or region
	// (accepted; the pinned ones stay in use).
	ScopeDrifts uint64
	// LastRefresh is when the held credentials were fetched.
	LastRefresh time.Time
	// Expiration is when the held credentials expire.
	Expiration time.Time
	// TimeToExpiry is Expiration minus now; negative once expired.
	TimeToExpiry time.Duration
	// Failing is true while refreshes fail; LastError is the latest failure.
	Failing   bool
	LastError error
}

// NewProvider fetches the first credentials (retrying temporary failures
// for at most cfg.MountRetryBound), pins their Scope and starts the
// background refresh. The error of a failed first fetch is returned as is,
// classified by the package's sentinels. ctx bounds only this first fetch;
// the background refresh runs until Close.
func NewProvider(ctx context.Context, cfg Config) (*Provider, error) {
	return newProvider(ctx, cfg, nil)
}

// newProvider is NewProvider with a hook to adjust timings before the loop
// starts (tests).
func newProvider(ctx context.Context, cfg Config, tune func(*Provider)) (*Provider, error) {
	c, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	bound := cfg.MountRetryBound
	if bound <= 0 {
		bound = DefaultMountRetryBound
	}
	cr, err := c.FetchWithRetry(ctx, bound)
	if err != nil {
		return nil, err
	}
	p := &Provider{
		client:      c,
		log:         c.log.With("workspace", c.workspace),
		clock:       c.clock,
		scope:       cr.Scope,
		wait:        cfg.ExpiredWaitBound,
		warnAfter:   waitWarnAfter,
		backoffBase: refreshBackoff,
		backoffMax:  refreshBackoffMx,
		maxSleep:    loopMaxSleep,
		kick:        make(chan struct{}, 1),
		done:        make(chan struct{}),
		changed:     make(chan struct{}),
		stats:       Stats{Failures: map[FailureKind]uint64{}},
	}
	if p.wait <= 0 {
		p.wait = DefaultExpiredWaitBound
	}
	if tune != nil {
		tune(p)
	}
	now := p.clock.Now()
	p.cur = newEntry(cr, now)
	p.stats.Refreshes, p.stats.LastRefresh = 1, now
	p.log.Info("workspace credentials obtained",
		"bucket", cr.Bucket, "prefix", cr.Prefix, "endpoint", cr.Endpoint, "region", cr.Region,
		"key", keyHint(cr.AccessKeyID), "expires", cr.Expiration, "refresh_at", p.cur.refreshAt)

	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.cancel = cancel
	go p.run(loopCtx)
	return p, nil
}

// Scope returns the storage location pinned when the Provider was created.
func (p *Provider) Scope() Scope { return p.scope }

// Retrieve implements aws.CredentialsProvider. While the held credentials
// are valid (judged on the wall clock) it returns them at once, without
// network access. Otherwise (expired, or rejected by storage) it waits for
// the background refresh, at most Config.ExpiredWaitBound or until ctx is
// done, and then fails with an error wrapping ErrExpired (and the last
// refresh error). A wait that lasts a second logs a warning, once for all
// the calls that wait for the same fresh credentials. After Close it fails
// with ErrClosed once the held credentials are no longer valid.
func (p *Provider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	now := p.clock.Now()
	p.mu.Lock()
	e := p.cur
	if e.usable(now) {
		if !now.Before(e.refreshAt) {
			// The loop's timer may lag the wall clock (after a suspend).
			p.poke()
		}
		p.mu.Unlock()
		return e.aws(), nil
	}
	p.stats.Waits++
	p.stats.Waiting++
	p.mu.Unlock()
	defer p.waitEnded(now)
	return p.waitUsable(ctx)
}

// waitEnded accounts for a Retrieve call that started waiting at start.
func (p *Provider) waitEnded(start time.Time) {
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Waiting--
	p.stats.WaitTime += max(now.Sub(start), 0) // the wall clock may step back
}

var _ aws.CredentialsProvider = (*Provider)(nil)

// waitUsable waits for usable credentials; see Retrieve. A call that has
// waited warnAfter asks for the warning of its wait episode (warnWaiting).
func (p *Provider) waitUsable(ctx context.Context) (aws.Credentials, error) {
	timer := time.NewTimer(p.wait)
	defer timer.Stop()
	warn := time.NewTimer(p.warnAfter)
	defer warn.Stop()
	warnC := warn.C
	for {
		p.mu.Lock()
		e, changed, closed := p.cur, p.changed, p.closed
		now := p.clock.Now()
		usable := e.usable(now)
		if !usable && !closed {
			p.noteWait(now)
		}
		p.mu.Unlock()
		if usable {
			return e.aws(), nil
		}
		if closed {
			return aws.Credentials{}, fmt.Errorf("credentials for %s: %w", p.client.workspace, ErrClosed)
		}
		p.poke()
		select {
		case <-changed:
		case <-warnC:
			warnC = nil
			p.warnWaiting()
		case <-ctx.Done():
			return aws.Credentials{}, fmt.Errorf("wait for fresh credentials for %s: %w", p.client.workspace, ctx.Err())
		case <-timer.C:
			p.mu.Lock()
			err := p.expiredError()
			p.mu.Unlock()
			return aws.Credentials{}, err
		}
	}
}

// noteWait records that a call waits at now for the unusable p.cur: the
// first such call starts a wait episode, which lasts until usable
// credentials are installed. Caller holds mu.
func (p *Provider) noteWait(now time.Time) {
	if p.waitFor != p.cur {
		p.waitFor, p.waitSince, p.waitWarned = p.cur, now, false
	}
}

// warnWaiting logs that calls are waiting for credentials, once per wait
// episode however many calls wait; install logs when the wait is over.
func (p *Provider) warnWaiting() {
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waitWarned || p.waitFor != p.cur || p.cur.usable(now) || p.closed {
		return
	}
	p.waitWarned = true
	why := "expired at " + p.cur.creds.Expiration.Format(time.RFC3339)
	if p.cur.invalid {
		why = "rejected by the storage"
	}
	args := []any{"waiting_for", p.warnAfter, "why", why}
	if p.lastErr != nil {
		args = append(args, "last_error", p.lastErr)
	}
	p.log.Warn("waiting for workspace credentials", args...)
}

// expiredError describes why no usable credentials are held. Caller holds mu.
func (p *Provider) expiredError() error {
	why := fmt.Sprintf("expired at %s", p.cur.creds.Expiration.Format(time.RFC3339))
	if p.cur.invalid {
		why = "were rejected by the storage"
	}
	lastErr := p.lastErr
	if lastErr == nil {
		return fmt.Errorf("credentials for %s %s and no fresh ones arrived within %s: %w", p.client.workspace, why, p.wait, ErrExpired)
	}
	return fmt.Errorf("credentials for %s %s and no fresh ones arrived within %s: %w; last refresh error: %w", p.client.workspace, why, p.wait, ErrExpired, lastErr)
}

// Invalidate drops the held credentials if their access key ID is
// accessKeyID, because the storage rejected them, and triggers one refresh.
// Credentials with another key (already replaced, or never held) are left
// alone, so a burst of rejections of the same key causes one refresh.
// Until the refresh succeeds, Retrieve waits as for expired credentials.
func (p *Provider) Invalidate(accessKeyID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.invalidateLocked(accessKeyID)
}

// invalidateLocked is Invalidate. Caller holds mu.
func (p *Provider) invalidateLocked(accessKeyID string) {
	if p.cur.creds.AccessKeyID != accessKeyID || p.cur.invalid {
		return
	}
	p.cur.invalid = true
	p.stats.Invalidations++
	p.log.Info("storage rejected the credentials; refreshing them",
		"key", keyHint(accessKeyID), "expires", p.cur.creds.Expiration)
	p.poke()
}

// Stats returns a snapshot of the counters.
func (p *Provider) Stats() Stats {
	answers := p.client.answerCounts() // before mu: no lock is taken while holding it
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Failures = make(map[FailureKind]uint64, len(p.stats.Failures))
	for k, v := range p.stats.Failures {
		s.Failures[k] = v
	}
	s.APIAnswers = answers
	s.ReactiveRetries = p.reactiveRetries.Load()
	s.Expiration = p.cur.creds.Expiration
	s.TimeToExpiry = s.Expiration.Sub(p.clock.Now())
	s.Failing = p.lastErr != nil
	s.LastError = p.lastErr
	return s
}

// Close stops the background refresh and waits for it to end. Retrieve
// keeps returning the held credentials while they are valid, then fails with
// ErrClosed. Close is idempotent and always returns nil.
func (p *Provider) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.changed)
		p.changed = make(chan struct{})
	}
	p.mu.Unlock()
	p.cancel()
	<-p.done
	return nil
}

// poke wakes the loop without blocking.
func (p *Provider) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run is the refresh loop: the only place that fetches after NewProvider,
// so concurrent callers share one refresh (single flight). It refreshes
// when the held credentials reach their refresh point, expire or are
// invalidated, and backs off after failures. While Retrieve calls wait,
// it retries within waitingRetry (unless the API asked for a Retry-After
// delay), so they get fresh credentials about that soon after the API is
// back, however long the backoff grew before; not sooner, so that a fleet
// of mounts with waiting callers does not hammer an API that is coming
// back (1,000 mounts: about 500 requests a second). It returns when ctx is
// done.
func (p *Provider) run(ctx context.Context) {
	defer close(p.done)
	failures := 0
	var retryAt time.Time // zero unless backing off
	serverDelay := false  // retryAt is the API's Retry-After: honoured as is
	for {
		now := p.clock.Now()
		p.mu.Lock()
		held, usable, waiting := p.cur, p.cur.usable(now), p.stats.Waiting > 0
		p.mu.Unlock()
		if waiting && !serverDelay && retryAt.Sub(now) > p.waitingRetry() {
			retryAt = now.Add(jitterUpTo(p.waitingRetry()))
		}
		due := held.refreshAt
		if !usable {
			due = now
		}
		if retryAt.After(due) {
			due = retryAt
		}
		if wait := due.Sub(now); wait > 0 {
			if !p.sleep(ctx, min(wait, p.maxSleep)) {
				return
			}
			continue
		}

		cr, err := p.client.Fetch(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = p.install(cr)
		}
		if err == nil {
			failures, retryAt, serverDelay = 0, time.Time{}, false
			continue
		}
		failures++
		var validTo time.Time // zero: nothing valid to protect
		if usable {
			validTo = held.validTo
		}
		delay := p.retryDelay(err, failures, validTo)
		var ae *APIError
		serverDelay = errors.As(err, &ae) && ae.RetryAfter > 0
		if !serverDelay && !usable {
			p.mu.Lock()
			if p.stats.Waiting > 0 {
				delay = min(delay, jitterUpTo(p.waitingRetry()))
			}
			p.mu.Unlock()
		}
		retryAt = p.clock.Now().Add(delay)
		p.recordFailure(err, delay)
	}
}

// waitingRetry bounds the retry delay while Retrieve calls wait: four
// times the base backoff (4 s), with full jitter.
func (p *Provider) waitingRetry() time.Duration { return 4 * p.backoffBase }

// sleep waits for d, a poke or the end of ctx; it reports false for the latter.
func (p *Provider) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-p.kick:
	case <-t.C:
	}
	return true
}

// retryDelay is the wait after the failures-th consecutive failure: the
// server's Retry-After if given, else full jitter over an exponential
// ceiling that, while credentials valid until validTo are held, is also
// capped at half their remaining validity, so a few more attempts happen
// before they expire.
func (p *Provider) retryDelay(err error, failures int, validTo time.Time) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) && ae.RetryAfter > 0 {
		return ae.RetryAfter
	}
	ceiling := backoffCeiling(failures, p.backoffBase, p.backoffMax)
	if left := validTo.Sub(p.clock.Now()); !validTo.IsZero() && left > 0 {
		ceiling = min(ceiling, max(left/2, p.backoffBase))
	}
	return jitterUpTo(ceiling)
}

// install makes freshly fetched credentials the held ones, unless they name
// another bucket or prefix (ErrScopeChanged) or are the very credentials the
// storage just rejected (ErrInvalidResponse). An endpoint or region change
// is accepted with a warning, and the pinned values stay in use.
func (p *Provider) install(cr Credentials) error {
	if cr.Bucket != p.scope.Bucket || cr.Prefix != p.scope.Prefix {
		return &ScopeChangedError{Pinned: p.scope, Got: cr.Scope}
	}
	got := cr.Scope
	cr.Scope = p.scope
	now := p.clock.Now()
	e := newEntry(cr, now)

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur.invalid && cr.AccessKeyID == p.cur.creds.AccessKeyID {
		// Using them again would fail again; back off instead of
		// refreshing at the rate of rejected requests.
		return &InvalidResponseError{Field: "access_key_id", Reason: "the API handed out again the credentials the storage just rejected"}
	}
	if got != p.scope {
		p.stats.ScopeDrifts++
		if got != p.driftWarned {
			p.driftWarned = got
			p.log.Warn("the workspace API now names another storage endpoint or region; still using the ones from mount time (remount to switch)",
				"pinned_endpoint", p.scope.Endpoint, "pinned_region", p.scope.Region,
				"new_endpoint", got.Endpoint, "new_region", got.Region)
		}
	}
	if !p.failingSince.IsZero() {
		p.log.Info("credential refresh recovered", "failing_for", now.Sub(p.failingSince).Round(time.Millisecond))
	}
	switch {
	case p.waitFor != p.cur: // no call waited for the replaced credentials
	case !e.usable(now):
		p.waitFor = e // the wait episode goes on
	default:
		if p.waitWarned {
			p.log.Info("workspace credentials available again", "waited", max(now.Sub(p.waitSince), 0).Round(time.Millisecond))
		}
		p.waitFor, p.waitWarned = nil, false
	}
	p.prev, p.cur = p.cur, e
	close(p.changed)
	p.changed = make(chan struct{})
	p.stats.Refreshes++
	p.stats.LastRefresh = now
	p.failingSince, p.outageLogged, p.lastErr = time.Time{}, false, nil
	p.log.Debug("credentials refreshed", "key", keyHint(cr.AccessKeyID), "expires", cr.Expiration, "refresh_at", e.refreshAt)
	return nil
}

// recordFailure counts and logs a failed refresh: one line when a failure
// streak starts, one error line when the held credentials become unusable
// during the streak, debug lines otherwise.
func (p *Provider) recordFailure(err error, delay time.Duration) {
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastErr = err
	p.stats.Failures[KindOf(err)]++
	usable := p.cur.usable(now)
	switch {
	case p.failingSince.IsZero() && usable:
		p.failingSince = now
		level := slog.LevelWarn
		if errors.Is(err, ErrScopeChanged) {
			level = slog.LevelError
		}
		p.log.Log(context.Background(), level, "credential refresh failed; still using the current credentials",
			"valid_until", p.cur.validTo, "retry_in", delay.Round(time.Millisecond), "error", err)
	case !usable && !p.outageLogged:
		if p.failingSince.IsZero() {
			p.failingSince = now
		}
		p.outageLogged = true
		p.log.Error("credentials expired or were rejected and cannot be refreshed; storage requests fail until the workspace API answers",
			"expired_at", p.cur.creds.Expiration, "rejected", p.cur.invalid, "retry_in", delay.Round(time.Millisecond), "error", err)
	default:
		p.log.Debug("credential refresh failed again", "retry_in", delay.Round(time.Millisecond), "error", err)
	}
}

// ScopeChangedError reports a refresh that named another bucket or prefix
// than the one pinned at mount time. errors.Is(err, ErrScopeChanged) holds.
type ScopeChangedError struct {
	Pinned, Got Scope
}

func (e *ScopeChangedError) Error() string {
	return fmt.Sprintf("the workspace API now places the workspace at s3://%s/%s, but it was mounted at s3://%s/%s; the new credentials were refused (remount to use the new location)",
		e.Got.Bucket, e.Got.Prefix, e.Pinned.Bucket, e.Pinned.Prefix)
}

// Is makes errors.Is(err, ErrScopeChanged) hold.
func (e *ScopeChangedError) Is(target error) bool { return target == ErrScopeChanged }
