package metrics

import (
	"syscall"
	"testing"
)

func TestListenAddrLoopbackByDefault(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"9100", "127.0.0.1:9100"},
		{":9100", "127.0.0.1:9100"},
		{"localhost:9100", "localhost:9100"},
		{"0.0.0.0:9100", "0.0.0.0:9100"},
		{"[::1]:9100", "[::1]:9100"},
	} {
		got, err := ListenAddr(c.in)
		if err != nil || got != c.want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"no port", "host:", "1.2.3.4"} {
		if got, err := ListenAddr(bad); err == nil {
			t.Errorf("ListenAddr(%q) = %q, want an error", bad, got)
		}
	}
}

func TestErrnoName(t *testing.T) {
	for _, c := range []struct {
		in   syscall.Errno
		want string
	}{{0, "ok"}, {syscall.ENOENT, "ENOENT"}, {syscall.EIO, "EIO"}, {syscall.Errno(4095), "4095"}} {
		if got := errnoName(c.in); got != c.want {
			t.Errorf("errnoName(%d) = %q, want %q", c.in, got, c.want)
		}
	}
}
