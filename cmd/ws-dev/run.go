package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mount-ws/internal/wsstack"
)

const usage = `Usage:
  ws-dev [serve] [flags]        run the local workspace until Ctrl-C
  ws-dev fault [-data DIR] ACTION [ARGS]
                                inject a fault into a running ws-dev
  ws-dev stats [-data DIR]      print what the running ws-dev served

Run "ws-dev serve -h" or "ws-dev fault -h" for their flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "fault":
		return fault(ctx, args, stdout, stderr)
	case "stats":
		return stats(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// Files ws-dev keeps in its data dir besides the gateway's data.
const (
	tokenFile   = "token"       // the demo token, mode 0600
	envFile     = "env"         // WS_API_URL=... for scripts
	controlFile = "control-url" // where "ws-dev fault" finds the control port
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("ws-dev serve", flag.ContinueOnError)
	fl.SetOutput(stderr)
	dataDir := fl.String("data", ".ws-dev", "directory for the S3 server's data and ws-dev's files")
	s3Addr := fl.String("s3-addr", "", "loopback address for the S3 endpoint (default: a free port)")
	apiAddr := fl.String("api-addr", "", "loopback address for the workspace API (default: a free port)")
	ttl := fl.Duration("ttl", 15*time.Minute, "lifetime of the credentials the API mints (at least 1s)")
	seed := fl.Bool("seed", true, "write the demo data into demo/ws (skips what is already there)")
	apiFail := fl.String("api-fail", "", "start with the next N credential requests failing: STATUS:N, e.g. 503:3")
	apiLatency := fl.Duration("api-latency", 0, "delay every credential answer by this much")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *ttl < time.Second {
		return fmt.Errorf("-ttl %v: must be at least 1s", *ttl)
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	token, err := wsstack.LoadOrCreateToken(filepath.Join(dir, tokenFile), "wsdev_")
	if err != nil {
		return err
	}
	demo := wsstack.Workspace{Org: "demo", WS: "ws", Tokens: []string{token}}
	scratch := wsstack.Workspace{Org: "demo", WS: "scratch", Tokens: []string{token}}
	stack, err := wsstack.Start(ctx, wsstack.Config{
		DataDir:    filepath.Join(dir, "s3"),
		S3Addr:     *s3Addr,
		APIAddr:    *apiAddr,
		TTL:        *ttl,
		Workspaces: []wsstack.Workspace{demo, scratch},
	})
	if err != nil {
		return fmt.Errorf("start local workspace: %w", err)
	}
	defer stack.Close()

	if *apiFail != "" {
		var status, n int
		if _, err := fmt.Sscanf(*apiFail, "%d:%d", &status, &n); err != nil || n < 1 {
			return fmt.Errorf("-api-fail %q: want STATUS:N, e.g. 503:3", *apiFail)
		}
		stack.API.FailNext(n, status)
	}
	stack.API.SetLatency(*apiLatency)

	if *seed {
		start := time.Now()
		n, err := stack.SeedDemo(ctx, demo)
		if err != nil {
			return fmt.Errorf("seed demo data: %w", err)
		}
		fmt.Fprintf(stdout, "Demo data: %d objects written in %v (%d already there).\n",
			n, time.Since(start).Round(time.Millisecond), len(wsstack.DemoObjects())-n)
	}

	control, err := startControl(stack)
	if err != nil {
		return err
	}
	defer control.Close()
	files := map[string]string{
		envFile:     fmt.Sprintf("WS_API_URL=%s\nWS_S3_URL=%s\nWS_TOKEN_FILE=%s\n", stack.APIURL(), stack.S3URL(), filepath.Join(dir, tokenFile)),
		controlFile: control.URL + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	defer func() {
		for name := range files {
			os.Remove(filepath.Join(dir, name))
		}
	}()

	fmt.Fprintf(stdout, `Local workspace is up.
  Workspace API:  %s   (credentials last %v)
  S3 endpoint:    %s
  Workspaces:     demo/ws (demo data), demo/scratch (empty); bucket %q
  Token:          %s   (saved in %s)

Mount demo/ws with:
  mount-ws --api-url %s --token-file %s demo/ws /mnt/ws

Inject faults with "ws-dev fault -h"; stop with Ctrl-C.
`, stack.APIURL(), *ttl, stack.S3URL(), wsstack.DefaultBucket, token, filepath.Join(dir, tokenFile),
		stack.APIURL(), filepath.Join(dir, tokenFile))

	<-ctx.Done()
	fmt.Fprintln(stdout, "Stopping the local workspace.")
	return nil
}
