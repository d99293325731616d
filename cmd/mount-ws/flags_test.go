package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h"} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{arg}, &out, &errOut)
		if code := exitCode(err, &errOut); code != 0 || errOut.Len() != 0 {
			t.Errorf("%s: exit %d, stderr %q; want 0 and nothing", arg, code, errOut.String())
		}
		for _, want := range []string{"Usage: mount-ws", "Workspace:", "--api-url", "-f, --foreground", "-o, --options", "Exit codes:"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: stdout lacks %q", arg, want)
			}
		}
	}
}

func TestUsageErrorHint(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--nope"}, &out, &errOut)
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if code := exitCode(err, &errOut); code != 2 || len(lines) != 1 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if got := strings.TrimSpace(errOut.String()); !strings.HasSuffix(got, "see mount-ws --help") {
		t.Errorf("stderr %q: want the error, then the hint, each once", got)
	}
}

// TestMountOptions checks that -o options set the flags of their names,
// that what mount(8) and systemd pass is ignored, and that a flag wins
// over the same option.
func TestMountOptions(t *testing.T) {
	env := func(string) string { return "" }
	c, err := parseFlags([]string{"acme/ws", "/mnt/ws", "-o",
		"rw,ro,allow_other,_netdev,nofail,x-systemd.automount,uid=1000,gid=1001,api_url=https://api.example,token_file=/etc/t,metadata_ttl=3s,xattr",
		"--uid", "7"}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := config{slug: "acme/ws", mountpoint: "/mnt/ws", readOnly: true, allowOther: true, uid: 7, gid: 1001,
		apiURL: "https://api.example", tokenFile: "/etc/t", metadataTTL: 3 * time.Second, xattr: true}
	got := config{slug: c.slug, mountpoint: c.mountpoint, readOnly: c.readOnly, allowOther: c.allowOther, uid: c.uid, gid: c.gid,
		apiURL: c.apiURL, tokenFile: c.tokenFile, metadataTTL: c.metadataTTL, xattr: c.xattr}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// TestNoFlagTakesTheToken holds the README's promise that the token is
// never taken on the command line, where ps(1) would show it: neither as a
// flag nor as a mount option, under any of the names one might try.
func TestNoFlagTakesTheToken(t *testing.T) {
	for _, args := range [][]string{
		{"--token", "secret-token"},
		{"--token=secret-token"},
		{"--api-token", "secret-token"},
		{"-o", "token=secret-token"},
		{"-o", "api_token=secret-token"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append(args, "cmd/ws", t.TempDir()), &out, &errOut)
		if code := exitCode(err, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown") {
			t.Errorf("%q: exit %d, stderr %q; want a usage error naming the unknown flag or option", args, code, errOut.String())
		}
		if strings.Contains(errOut.String(), "secret-token") {
			t.Errorf("%q: the refused value is echoed in %q", args, errOut.String())
		}
	}
}

// TestDefaultWaits holds the README's numbers for the waits a user does
// not set: 20 s of retries of an unavailable API at mount time, 30 s for
// fresh credentials once the held ones expired, a background retry of a
// failed upload every 15 s, and a 10 s metadata TTL.
func TestDefaultWaits(t *testing.T) {
	c, err := parseFlags([]string{"--api-url", "https://api.example", "acme/ws", "/mnt/ws"}, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		name      string
		got, want time.Duration
	}{
		{"--mount-wait", c.mountWait, 20 * time.Second},
		{"--credentials-wait", c.credsWait, 30 * time.Second},
		{"--upload-retry-interval", c.retryEvery, 15 * time.Second},
		{"--metadata-ttl", c.metadataTTL, 10 * time.Second},
	} {
		if w.got != w.want {
			t.Errorf("%s defaults to %s; the README says %s", w.name, w.got, w.want)
		}
	}
}

// TestDataCacheFlags: the data cache is off unless a directory is given
// (also as the fstab option data_cache_dir), and a size too small for a
// block is refused with what to do.
func TestDataCacheFlags(t *testing.T) {
	env := func(string) string { return "http://127.0.0.1:1" }
	c, err := parseFlags([]string{"acme/ws", "/mnt/ws"}, env, &bytes.Buffer{})
	if err != nil || c.dataCache != "" || c.dataLimit != 10<<30 {
		t.Errorf("defaults: dir %q, limit %d, %v; want off and 10 GiB", c.dataCache, c.dataLimit, err)
	}
	c, err = parseFlags([]string{"acme/ws", "/mnt/ws", "-o", "data_cache_dir=/var/cache/ws,data_cache_size_mib=64"}, env, &bytes.Buffer{})
	if err != nil || c.dataCache != "/var/cache/ws" || c.dataLimit != 64<<20 {
		t.Errorf("as mount options: dir %q, limit %d, %v", c.dataCache, c.dataLimit, err)
	}
	_, err = parseFlags([]string{"acme/ws", "/mnt/ws", "--data-cache-size-mib", "1"}, env, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--data-cache-size-mib must be at least 2") {
		t.Errorf("a 1 MiB data cache: %v, want a usage error", err)
	}
}

// TestStatusShowsDataCache: mount-ws status has a data cache line when
// the cache is on, and none when it is off.
func TestStatusShowsDataCache(t *testing.T) {
	for _, tc := range []struct {
		r    statusReport
		want string
	}{
		{statusReport{DataCache: 3 << 20, DataCacheMax: 10 << 20, DataCacheHits: 5, DataCacheFills: 3},
			"data cache:  3.0 MiB of 10.0 MiB, 5 blocks read from it, 3 fetched into it, 0 opens passed through\n"},
		{statusReport{}, ""},
	} {
		var out bytes.Buffer
		printStatus(&out, tc.r, time.Now())
		got := ""
		for _, l := range strings.SplitAfter(out.String(), "\n") {
			if strings.HasPrefix(l, "data cache:") {
				got = l
			}
		}
		if got != tc.want {
			t.Errorf("data cache line %q, want %q", got, tc.want)
		}
	}
}
