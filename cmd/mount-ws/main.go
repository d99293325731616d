// Command mount-ws mounts a workspace's storage as a local directory:
//
//	mount-ws [flags] ORG/WS MOUNTPOINT
//
// Run "mount-ws --help" for the flags and exit codes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}
