// Command ws-soak is the chaos and soak run of issue 12: one mount-ws on
// the local workspace stack, with 1-second credentials and the stack's
// faults injected at random (workspace API 429/5xx/down/hanging, S3
// 500/503/stall/reset on every operation kind), under a workload of
// writers, appenders, readers, renames and deletes that keeps a model of
// what the bucket must hold. At the end the faults are cleared, mount-ws
// is unmounted (it uploads what is left), and the bucket is compared with
// the model byte for byte. Every error the workload saw is checked against
// what the README allows. Run "ws-soak -h" for its flags;
// docs/RELIABILITY.md records a run.
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
		fmt.Fprintln(os.Stderr, "ws-soak:", err)
		os.Exit(1)
	}
}
