// Package metrics holds one mount's Prometheus metrics. The packages that
// do the work know nothing of Prometheus: bucket and fs report events
// through observer hooks that Mount implements, and the state they hold
// (credentials, staging, uploads, caches) is read from their Stats
// snapshots at each scrape.
package metrics

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"mount-ws/bucket"
	"mount-ws/creds"
	"mount-ws/fs"
)

// Namespace prefixes every metric name.
const Namespace = "mount_ws"

// Sources are the snapshots read at each scrape; nil ones are skipped.
type Sources struct {
	FS    func() fs.Stats
	Creds func() creds.Stats
}

// Info labels the mount_ws_mount_info series.
type Info struct {
	Workspace, Mountpoint, Version string
}

// Mount is one mount's metrics in a registry of its own (no global state:
// two mounts in one process, as in tests, do not mix).
type Mount struct {
	reg *prometheus.Registry

	s3Requests  *prometheus.CounterVec
	s3Latency   *prometheus.HistogramVec
	s3Read      prometheus.Counter
	s3Written   prometheus.Counter
	fuseOps     *prometheus.CounterVec
	fuseLatency *prometheus.HistogramVec

	// The same counts summed up, for `mount-ws status` (reading them back
	// out of the Prometheus types would mean gathering every series).
	s3Attempts, s3Failed   atomic.Uint64
	s3ReadN, s3WrittenN    atomic.Int64
	fuseAnswers, fuseFails atomic.Uint64
}

// Totals are a mount's counts since it started.
type Totals struct {
	// S3Requests counts request attempts, S3Failed those that did not
	// succeed (not_found included: a HEAD of a name not there is normal).
	S3Requests, S3Failed uint64
	// S3ReadBytes and S3WrittenBytes are body bytes from and to S3.
	S3ReadBytes, S3WrittenBytes int64
	// FUSEOps counts answered file system requests, FUSEErrors those
	// answered with an errno other than ENOENT.
	FUSEOps, FUSEErrors uint64
}

// Totals returns the counts since the mount started.
func (m *Mount) Totals() Totals {
	return Totals{
		S3Requests: m.s3Attempts.Load(), S3Failed: m.s3Failed.Load(),
		S3ReadBytes: m.s3ReadN.Load(), S3WrittenBytes: m.s3WrittenN.Load(),
		FUSEOps: m.fuseAnswers.Load(), FUSEErrors: m.fuseFails.Load(),
	}
}

// Latency buckets, in seconds: from a page-cache-speed FUSE answer to a
// multipart completion.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New registers every metric of one mount.
func New(info Info, src Sources) *Mount {
	m := &Mount{
		reg: prometheus.NewRegistry(),
		s3Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "s3_requests_total",
			Help: "S3 request attempts by operation and outcome (retries count as attempts of their own).",
		}, []string{"operation", "outcome"}),
		s3Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "s3_request_duration_seconds",
			Help:    "Time from sending an S3 request attempt to its answer (bodies stream on afterwards).",
			Buckets: latencyBuckets,
		}, []string{"operation"}),
		s3Read: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "s3_read_bytes_total",
			Help: "Body bytes received from S3 (object data and listings).",
		}),
		s3Written: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "s3_written_bytes_total",
			Help: "Body bytes sent to S3 (objects and upload parts).",
		}),
		fuseOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "fuse_operations_total",
			Help: "FUSE requests answered, by operation and errno (ok for success).",
		}, []string{"operation", "errno"}),
		fuseLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "fuse_operation_duration_seconds",
			Help:    "Time this process took to answer a FUSE request.",
			Buckets: latencyBuckets,
		}, []string{"operation"}),
	}
	m.reg.MustRegister(m.s3Requests, m.s3Latency, m.s3Read, m.s3Written, m.fuseOps, m.fuseLatency,
		newStateCollector(info, src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Request implements bucket.Observer.
func (m *Mount) Request(op, outcome string, elapsed time.Duration) {
	m.s3Requests.WithLabelValues(op, outcome).Inc()
	m.s3Latency.WithLabelValues(op).Observe(elapsed.Seconds())
	m.s3Attempts.Add(1)
	if outcome != bucket.OutcomeOK {
		m.s3Failed.Add(1)
	}
}

// Transferred implements bucket.Observer.
func (m *Mount) Transferred(sent, received int64) {
	if sent > 0 {
		m.s3Written.Add(float64(sent))
		m.s3WrittenN.Add(sent)
	}
	if received > 0 {
		m.s3Read.Add(float64(received))
		m.s3ReadN.Add(received)
	}
}

var _ bucket.Observer = (*Mount)(nil)

// FUSEOp is an fs.OpObserver.
func (m *Mount) FUSEOp(op string, errno syscall.Errno, elapsed time.Duration) {
	m.fuseOps.WithLabelValues(op, errnoName(errno)).Inc()
	m.fuseLatency.WithLabelValues(op).Observe(elapsed.Seconds())
	m.fuseAnswers.Add(1)
	if errno != 0 && errno != syscall.ENOENT {
		m.fuseFails.Add(1)
	}
}

var _ fs.OpObserver = (*Mount)(nil).FUSEOp

// errnoName is "ok" for success, else the errno's symbol ("ENOENT").
func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	if name := unix.ErrnoName(e); name != "" {
		return name
	}
	return strconv.Itoa(int(e))
}

// Handler serves the metrics in the Prometheus text format.
func (m *Mount) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is where the metrics live, for tests.
func (m *Mount) Registry() *prometheus.Registry { return m.reg }
