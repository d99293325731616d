package wsstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// loopbackServer serves a handler on a fixed loopback address and can be
// taken down (connections refused) and brought back on the same address.
type loopbackServer struct {
	addr    string
	handler http.Handler

	mu     sync.Mutex
	srv    *http.Server  // nil while down
	timer  *time.Timer   // pending restart, if down for a while
	served chan struct{} // closed when the current srv's Serve returns
}

// listen starts serving on addr ("" picks a free loopback port).
func listen(addr string, h http.Handler) (*loopbackServer, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	s := &loopbackServer{addr: l.Addr().String(), handler: h}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serveLocked(l)
	return s, nil
}

func (s *loopbackServer) serveLocked(l net.Listener) {
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 30 * time.Second}
	done := make(chan struct{})
	s.srv, s.served = srv, done
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
}

func (s *loopbackServer) url() string { return "http://" + s.addr }

// down closes the listener and every open connection, so clients get
// "connection refused", and listens again after d.
func (s *loopbackServer) down(d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
	s.timer = time.AfterFunc(d, s.relisten)
	return nil
}

// relistenEvery is how often a server whose outage is over tries again to
// listen on its address while a socket holds it.
const relistenEvery = 10 * time.Millisecond

// relisten ends an outage begun by down. While the address is held by
// another socket it tries again every relistenEvery: on loopback, a client
// dialling the closed port can be handed that very port as its own (the
// API's port is in the ephemeral range), so with many clients retrying the
// first attempt can fail for a moment. It gives up only when up or close
// is called meanwhile.
func (s *loopbackServer) relisten() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil || s.timer == nil {
		return // already up again, or closed for good
	}
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.timer = time.AfterFunc(relistenEvery, s.relisten)
		return
	}
	s.timer = nil
	s.serveLocked(l)
}

// up ends an outage begun by down at once, listening again on the same
// address. It does nothing while serving or after close.
func (s *loopbackServer) up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil || s.timer == nil {
		return nil
	}
	s.timer.Stop()
	s.timer = nil
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen again on %s: %w", s.addr, err)
	}
	s.serveLocked(l)
	return nil
}

func (s *loopbackServer) stopLocked() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	if s.srv == nil {
		return
	}
	s.srv.Close()
	<-s.served
	s.srv = nil
}

// close stops serving for good.
func (s *loopbackServer) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		s.stopLocked()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = s.srv.Close()
	}
	<-s.served
	s.srv = nil
	return err
}
