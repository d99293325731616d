// Command ws-bench measures mount-ws against the AWS SDK reading the same
// local workspace directly (the ceiling), and against s3fs and rclone when
// they are installed, in one run. It starts the local workspace stack
// in-process, seeds it, mounts each filesystem afresh for every workload,
// and prints a table of results with ratios to the SDK. Run "ws-bench -h"
// for its flags; docs/BENCHMARKS.md explains the method.
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
		fmt.Fprintln(os.Stderr, "ws-bench:", err)
		os.Exit(1)
	}
}
