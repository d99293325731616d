package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector turns the fs and creds snapshots into metrics at scrape
// time, so that keeping them costs nothing between scrapes.
type stateCollector struct {
	info Info
	src  Sources

	mountInfo *prometheus.Desc

	prefetchBytes, prefetchLimit *prometheus.Desc
	stagedBytes, stagedLimit     *prometheus.Desc
	uploadsPending, uploadsFail  *prometheus.Desc
	uploads                      *prometheus.Desc
	cacheHits, cacheMisses       *prometheus.Desc
	dataCacheBytes, dataCacheLim *prometheus.Desc
	forgotten                    *prometheus.Desc
	passthrough                  *prometheus.Desc

	credExpiry, credFailing   *prometheus.Desc
	credRefreshes             *prometheus.Desc
	credAPI                   *prometheus.Desc
	credReactive, credRetries *prometheus.Desc
	credWaits, credWaitTime   *prometheus.Desc
	credWaiting               *prometheus.Desc
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
}

func newStateCollector(info Info, src Sources) *stateCollector {
	return &stateCollector{
		info:      info,
		src:       src,
		mountInfo: desc("mount_info", "Always 1; labels name the workspace, mountpoint and version.", "workspace", "mountpoint", "version"),

		prefetchBytes:  desc("prefetch_memory_bytes", "Read-ahead memory in use."),
		prefetchLimit:  desc("prefetch_memory_limit_bytes", "Read-ahead memory budget (--prefetch-memory-mib)."),
		stagedBytes:    desc("staged_bytes", "Bytes in local staging files (written data not yet uploaded, or being edited)."),
		stagedLimit:    desc("staged_limit_bytes", "Staging space budget (--cache-size-mib)."),
		uploadsPending: desc("uploads_pending", "Files whose data is not in the bucket yet (being saved or waiting for a retry)."),
		uploadsFail:    desc("uploads_failed", "Files whose last upload failed; retried in the background until it succeeds."),
		uploads:        desc("uploads_total", "Saves of a file's content or metadata, by outcome (ok, failed).", "outcome"),
		cacheHits:      desc("cache_hits_total", "Lookups answered from the directory cache (cache=metadata), reads served from data already fetched (cache=readahead), blocks read from the local data cache (cache=data).", "cache"),
		cacheMisses:    desc("cache_misses_total", "Lookups that asked the storage (cache=metadata), reads that waited for it (cache=readahead), blocks fetched from the storage into the data cache (cache=data).", "cache"),
		dataCacheBytes: desc("data_cache_bytes", "Bytes of blocks in the local data cache (0 without --data-cache-dir)."),
		dataCacheLim:   desc("data_cache_limit_bytes", "Size of the local data cache (--data-cache-size-mib; 0 without --data-cache-dir)."),
		forgotten:      desc("inodes_forgotten_total", "Files and directories the kernel forgot (memory pressure); a later lookup makes them anew."),
		passthrough:    desc("passthrough_opens_total", "File opens handed a whole copy in the local data cache for the kernel to read directly (FUSE passthrough; read-only mounts)."),

		credExpiry:    desc("credentials_expiry_seconds", "Seconds until the held storage credentials expire (negative once expired)."),
		credFailing:   desc("credentials_refresh_failing", "1 while credential refreshes fail, else 0."),
		credRefreshes: desc("credentials_refreshes_total", "Credential fetches by outcome: ok, or the kind of failure.", "outcome"),
		credAPI:       desc("credentials_api_responses_total", "Workspace API answers by HTTP status (0: no answer).", "status"),
		credReactive:  desc("credentials_reactive_refreshes_total", "Refreshes forced because the storage rejected the held credentials."),
		credRetries:   desc("credentials_reactive_retries_total", "Storage requests retried after fresh credentials replaced rejected ones."),
		credWaits:     desc("credentials_waits_total", "Storage requests that had to wait for credentials (expired or rejected)."),
		credWaitTime:  desc("credentials_wait_seconds_total", "Time storage requests spent waiting for credentials."),
		credWaiting:   desc("credentials_waiting", "Storage requests waiting for credentials now."),
	}
}

// Describe lists every metric without reading the sources, which may not
// be ready at registration.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.mountInfo, c.prefetchBytes, c.prefetchLimit, c.stagedBytes, c.stagedLimit,
		c.uploadsPending, c.uploadsFail, c.uploads, c.cacheHits, c.cacheMisses,
		c.dataCacheBytes, c.dataCacheLim, c.forgotten, c.passthrough,
		c.credExpiry, c.credFailing, c.credRefreshes, c.credAPI, c.credReactive,
		c.credRetries, c.credWaits, c.credWaitTime, c.credWaiting,
	} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(c.mountInfo, 1, c.info.Workspace, c.info.Mountpoint, c.info.Version)
	if c.src.FS != nil {
		s := c.src.FS()
		gauge(c.prefetchBytes, float64(s.PrefetchBytes))
		gauge(c.prefetchLimit, float64(s.PrefetchLimit))
		gauge(c.stagedBytes, float64(s.StagedBytes))
		gauge(c.stagedLimit, float64(s.StageLimit))
		gauge(c.uploadsPending, float64(len(s.Unsaved)))
		gauge(c.uploadsFail, float64(s.FailedUploads()))
		counter(c.uploads, float64(s.Saves), "ok")
		counter(c.uploads, float64(s.SaveFailures), "failed")
		counter(c.cacheHits, float64(s.MetadataHits), "metadata")
		counter(c.cacheMisses, float64(s.MetadataMisses), "metadata")
		counter(c.cacheHits, float64(s.ReadAheadHits), "readahead")
		counter(c.cacheMisses, float64(s.ReadAheadMisses), "readahead")
		counter(c.cacheHits, float64(s.DataCacheHits), "data")
		counter(c.cacheMisses, float64(s.DataCacheMisses), "data")
		gauge(c.dataCacheBytes, float64(s.DataCacheBytes))
		gauge(c.dataCacheLim, float64(s.DataCacheLimit))
		counter(c.forgotten, float64(s.Forgotten))
		counter(c.passthrough, float64(s.PassthroughOpens))
	}
	if c.src.Creds != nil {
		s := c.src.Creds()
		gauge(c.credExpiry, s.TimeToExpiry.Seconds())
		failing := 0.0
		if s.Failing {
			failing = 1
		}
		gauge(c.credFailing, failing)
		counter(c.credRefreshes, float64(s.Refreshes), "ok")
		for kind, n := range s.Failures {
			counter(c.credRefreshes, float64(n), string(kind))
		}
		for status, n := range s.APIAnswers {
			counter(c.credAPI, float64(n), strconv.Itoa(status))
		}
		counter(c.credReactive, float64(s.Invalidations))
		counter(c.credRetries, float64(s.ReactiveRetries))
		counter(c.credWaits, float64(s.Waits))
		counter(c.credWaitTime, s.WaitTime.Seconds())
		gauge(c.credWaiting, float64(s.Waiting))
	}
}
