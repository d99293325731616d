package main

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// sdNotify sends state ("READY=1", "STOPPING=1") to the service manager
// when mount-ws runs under systemd with Type=notify ($NOTIFY_SOCKET set),
// as sd_notify(3) does: one datagram on a unix socket, whose name starts
// with "@" for the abstract namespace. Without the variable it does
// nothing.
func sdNotify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("notify systemd: %w", err)
	}
	return nil
}
