// Command ws-dev runs a local workspace: an embedded S3 server and a
// workspace API emulator, seeded with a demo workspace, for trying mount-ws
// and for its tests and benchmarks. Run "ws-dev -h" for usage.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ws-dev:", err)
		os.Exit(1)
	}
}
