package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"mount-ws/internal/wsstack"
)

// controlServer serves wsstack.ControlHandler on a free loopback port.
type controlServer struct {
	URL string
	srv *http.Server
}

func startControl(s *wsstack.Stack) (*controlServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("control port: %w", err)
	}
	srv := &http.Server{Handler: wsstack.ControlHandler(s), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return &controlServer{URL: "http://" + l.Addr().String(), srv: srv}, nil
}

func (c *controlServer) Close() error { return c.srv.Close() }

const faultUsage = `Usage: ws-dev fault [-data DIR] ACTION [ARGS]

Actions (against the ws-dev running with the same -data):
  api-fail STATUS [N] [RETRY-AFTER]  next N (1) credential requests answer STATUS
                                     (401 403 426 429 500 502 504 ...)
  api-malformed [N]                  next N answers are not JSON
  api-truncated [N]                  next N answers are cut in half
  api-wrong-scope BUCKET PREFIX [N]  next N answers name another bucket/prefix
  api-latency DURATION               delay every answer (0 to stop)
  api-hang DURATION                  requests hang for DURATION
  api-down DURATION                  connections refused for DURATION
  ttl DURATION                       lifetime of credentials minted from now on
  revoke ORG/WS | ACCESS-KEY-ID      S3 refuses those credentials from now on
  s3-fail STATUS [N] [OP...]         next N (every, if 0) S3 requests answer
                                     STATUS (503 = SlowDown, 500); OPs limit it:
                                     GET HEAD LIST PUT COPY MPU_PART ...
  s3-stall DURATION [N] [OP...]      stall S3 requests
  clear                              remove every fault: API failures, latency,
                                     hangs and outages, S3 faults; the TTL goes
                                     back to serve's -ttl (revoked credentials
                                     stay revoked)
`

func fault(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("fault", flag.ContinueOnError)
	dataDir := fl.String("data", ".ws-dev", "data dir of the running ws-dev")
	if err := parseFlags(fl, args, faultUsage, stdout, stderr); err != nil {
		return err
	}
	req, err := parseFault(fl.Args())
	if err != nil {
		printHelp(stderr, fl, faultUsage)
		return err
	}
	body, _ := json.Marshal(req)
	resp, err := controlCall(ctx, *dataDir, http.MethodPost, "/fault", body)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, resp)
	return nil
}

const statsUsage = `Usage: ws-dev stats [-data DIR] [-json]

Prints what the ws-dev running with the same -data has served since it
started: the workspace API's requests and answers by status, and S3 requests
by operation.
`

func stats(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("stats", flag.ContinueOnError)
	dataDir := fl.String("data", ".ws-dev", "data dir of the running ws-dev")
	asJSON := fl.Bool("json", false, "print the control port's JSON as it is, for scripts")
	if err := parseFlags(fl, args, statsUsage, stdout, stderr); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		printHelp(stderr, fl, statsUsage)
		return fmt.Errorf("stats: unexpected argument %q", fl.Arg(0))
	}
	resp, err := controlCall(ctx, *dataDir, http.MethodGet, "/stats", nil)
	if err != nil {
		return err
	}
	if *asJSON {
		fmt.Fprint(stdout, resp)
		return nil
	}
	var st wsstack.ControlStats
	if err := json.Unmarshal([]byte(resp), &st); err != nil {
		return fmt.Errorf("read stats: %w", err)
	}
	return writeStats(stdout, st)
}

// writeStats prints st as a table, labels left and counts right-aligned:
// the API's answers by status, then S3 requests by operation.
func writeStats(w io.Writer, st wsstack.ControlStats) error {
	type row struct {
		label string
		n     string // "" for a heading
	}
	count := func(label string, n uint64) row { return row{"  " + label, strconv.FormatUint(n, 10)} }
	rows := []row{
		{label: "Workspace API"},
		count("requests", uint64(st.API.Requests)),
		count("credentials minted", uint64(st.API.Minted)),
	}
	for _, code := range slices.Sorted(maps.Keys(st.API.ByStatus)) {
		if code != 0 {
			rows = append(rows, count(fmt.Sprintf("answered %d %s", code, http.StatusText(code)), uint64(st.API.ByStatus[code])))
		}
	}
	if n, ok := st.API.ByStatus[0]; ok { // counted as status 0
		rows = append(rows, count("client gave up first", uint64(n)))
	}
	rows = append(rows, row{label: "S3 requests"})
	var total uint64
	for _, op := range slices.Sorted(maps.Keys(st.S3)) {
		rows = append(rows, count(string(op), st.S3[op]))
		total += st.S3[op]
	}
	rows = append(rows, count("total", total))

	labelW, nW := 0, 0
	for _, r := range rows {
		if r.n != "" {
			labelW, nW = max(labelW, len(r.label)), max(nW, len(r.n))
		}
	}
	var b strings.Builder
	for i, r := range rows {
		switch {
		case r.n != "":
			fmt.Fprintf(&b, "%-*s  %*s\n", labelW, r.label, nW, r.n)
		case i > 0:
			fmt.Fprintf(&b, "\n%s\n", r.label)
		default:
			fmt.Fprintf(&b, "%s\n", r.label)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// parseFault turns the command line into a control request.
func parseFault(a []string) (wsstack.ControlRequest, error) {
	var req wsstack.ControlRequest
	if len(a) == 0 {
		return req, errors.New("name an action")
	}
	count := func(i, def int) (int, error) {
		if len(a) <= i {
			return def, nil
		}
		n, err := strconv.Atoi(a[i])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s: %q is not a count", a[0], a[i])
		}
		return n, nil
	}
	need := func(n int) error {
		if len(a) < n+1 {
			return fmt.Errorf("%s needs %d argument(s)", a[0], n)
		}
		return nil
	}
	var err error
	switch a[0] {
	case "api-fail":
		if err = need(1); err != nil {
			return req, err
		}
		req.APIFail = &wsstack.APIFailRequest{}
		if req.APIFail.Status, err = strconv.Atoi(a[1]); err != nil {
			return req, fmt.Errorf("api-fail: %q is not a status", a[1])
		}
		if req.APIFail.Count, err = count(2, 1); err != nil {
			return req, err
		}
		if len(a) > 3 {
			req.APIFail.RetryAfter = a[3]
		}
	case "api-malformed", "api-truncated":
		n, err := count(1, 1)
		if err != nil {
			return req, err
		}
		req.APIBody = &wsstack.APIBodyRequest{Kind: strings.TrimPrefix(a[0], "api-"), Count: n}
	case "api-wrong-scope":
		if err = need(2); err != nil {
			return req, err
		}
		n, err := count(3, 1)
		if err != nil {
			return req, err
		}
		req.APIWrongScope = &wsstack.WrongScopeRequest{Bucket: a[1], Prefix: a[2], Count: n}
	case "api-latency", "api-hang", "api-down", "ttl", "revoke":
		if err = need(1); err != nil {
			return req, err
		}
		switch a[0] {
		case "api-latency":
			req.APILatency = a[1]
		case "api-hang":
			req.APIHang = a[1]
		case "api-down":
			req.APIDown = a[1]
		case "ttl":
			req.TTL = a[1]
		case "revoke":
			req.Revoke = a[1]
		}
	case "s3-fail", "s3-stall":
		if err = need(1); err != nil {
			return req, err
		}
		req.S3Fault = &wsstack.S3FaultRequest{}
		if a[0] == "s3-fail" {
			if req.S3Fault.Status, err = strconv.Atoi(a[1]); err != nil {
				return req, fmt.Errorf("s3-fail: %q is not a status", a[1])
			}
		} else {
			req.S3Fault.Stall = a[1]
		}
		if req.S3Fault.Times, err = count(2, 0); err != nil {
			return req, err
		}
		for _, op := range a[min(3, len(a)):] {
			req.S3Fault.Ops = append(req.S3Fault.Ops, wsstack.Op(strings.ToUpper(op)))
		}
	case "clear":
		req.Clear = true
	default:
		return req, fmt.Errorf("unknown action %q", a[0])
	}
	return req, nil
}

func controlCall(ctx context.Context, dataDir, method, path string, body []byte) (string, error) {
	raw, err := os.ReadFile(filepath.Join(dataDir, controlFile))
	if err != nil {
		return "", fmt.Errorf("no running ws-dev with data dir %s (start one with \"ws-dev\"): %w", dataDir, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSpace(string(raw))+path, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("reach ws-dev: %w", err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ws-dev refused: %s", strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
