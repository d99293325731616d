// Command mount-ws-csi is the CSI node plugin of mount-ws, and a small
// client of it (publish, unpublish). See package csidriver.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"mount-ws/csidriver"
)

// version is set at build time with -ldflags "-X main.version=..." (make build).
var version = "unknown"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := csidriver.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, version)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mount-ws-csi:", err)
		if errors.As(err, new(csidriver.UsageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
