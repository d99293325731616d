package wsstack

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// TestOutageEndsWhileAddressHeld: an outage whose address another socket
// holds when it should end (as a client dialling the closed port may, on
// loopback) ends as soon as the socket lets go.
func TestOutageEndsWhileAddressHeld(t *testing.T) {
	srv, err := listen("", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.close() })
	if err := srv.down(time.Hour); err != nil {
		t.Fatal(err)
	}
	squatter, err := net.Listen("tcp", srv.addr)
	if err != nil {
		t.Fatalf("hold the address during the outage: %v", err)
	}
	srv.mu.Lock()
	srv.timer.Reset(0) // the outage is over now, but the address is held
	srv.mu.Unlock()
	time.Sleep(5 * relistenEvery) // several failed attempts
	squatter.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(srv.url())
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still down 5s after the address was released: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
