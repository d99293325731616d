package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// ListenAddr completes a --metrics-addr value: a missing host ("9100" or
// ":9100") means loopback, so that metrics are reachable from other
// machines only when asked for ("0.0.0.0:9100").
func ListenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = "", addr // a bare port, or nonsense
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("metrics address %q: want HOST:PORT or PORT", addr)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Server serves /metrics until Close.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{}
	err  error // why serving stopped early; set before done closes
}

// Serve listens on addr (see ListenAddr) and serves m at /metrics.
func Serve(addr string, m *Mount) (*Server, error) {
	addr, err := ListenAddr(addr)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "mount-ws: metrics at /metrics")
	})
	s := &Server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: l.Addr(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			s.err = fmt.Errorf("metrics server: %w", err)
		}
	}()
	return s, nil
}

// Addr is where the server listens (the port resolved when 0 was asked).
func (s *Server) Addr() string { return s.addr.String() }

// Close stops serving, waits for the server to end, and says why it
// stopped early if it did.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return errors.Join(s.err, err)
}
