package loopback

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestListenPair(t *testing.T) {
	t.Parallel()
	v4, v6, port, err := ListenPair()
	if err != nil {
		t.Fatal(err)
	}
	defer v4.Close()
	defer v6.Close()
	a4, a6 := v4.Addr().(*net.TCPAddr), v6.Addr().(*net.TCPAddr)
	if !a4.IP.Equal(net.IPv4(127, 0, 0, 1)) || !a6.IP.Equal(net.IPv6loopback) {
		t.Fatalf("addresses %v and %v, want 127.0.0.1 and ::1", a4, a6)
	}
	if a4.Port != port || a6.Port != port || port == 0 {
		t.Fatalf("ports %d and %d, want both %d", a4.Port, a6.Port, port)
	}
}

func TestListenUDPPair(t *testing.T) {
	t.Parallel()
	v4, v6, port, err := ListenUDPPair()
	if err != nil {
		t.Fatal(err)
	}
	defer v4.Close()
	defer v6.Close()
	a4, a6 := v4.LocalAddr().(*net.UDPAddr), v6.LocalAddr().(*net.UDPAddr)
	if !a4.IP.Equal(net.IPv4(127, 0, 0, 1)) || !a6.IP.Equal(net.IPv6loopback) {
		t.Fatalf("addresses %v and %v, want 127.0.0.1 and ::1", a4, a6)
	}
	if a4.Port != port || a6.Port != port || port == 0 {
		t.Fatalf("ports %d and %d, want both %d", a4.Port, a6.Port, port)
	}
}

func TestCounter(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cnt := NewCounter(l)
	srv, err := StartHTTP(cnt, nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for range 3 { // one keep-alive connection serves all three
		resp, err := client.Get(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) // a drained body lets the connection be reused
		resp.Body.Close()
	}
	if err := cnt.WaitOpen(ctx, 1); err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := cnt.WaitOpen(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if got := cnt.Accepted(); got != 2 {
		t.Fatalf("Accepted() = %d, want 2", got)
	}
	// Losers close their connections; the server notices and closes its side.
	raw.Close()
	tr.CloseIdleConnections()
	if err := cnt.WaitOpen(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if got := cnt.Accepted(); got != 2 {
		t.Fatalf("Accepted() = %d after close, want 2", got)
	}

	short, cancelShort := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancelShort()
	if err := cnt.WaitOpen(short, 5); err == nil {
		t.Fatal("WaitOpen(5) returned nil with no connection open")
	}
}
