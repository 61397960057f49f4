package loopback

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestH3NoExtendedConnect(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	conf, err := ca.ServerConfig("::1")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := StartH3NoExtendedConnect(pc, conf)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()

	qc, cc := dialH3(t, ca, srv.Addr())
	s := cc.Settings()
	if s.EnableExtendedConnect {
		t.Errorf("SETTINGS %+v offer extended CONNECT", s)
	}
	if _, ok := s.Other[h3SettingEnableConnectProtocol]; ok {
		t.Errorf("SETTINGS %+v hold 0x08", s)
	}

	// A client that checks SETTINGS refuses to try.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, srv.URL(), pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Proto = "websocket"
	if resp, err := cc.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Errorf("extended CONNECT got %d, want a client error", resp.StatusCode)
	} else if !strings.Contains(err.Error(), "Extended CONNECT") {
		t.Errorf("extended CONNECT: %v, want the client to see no extended CONNECT", err)
	}

	// One that does not gets a 501, as does any request.
	resp, stream, err := h3Open(cc)(mustConnect(t, ctx, srv.URL()))
	if err != nil {
		t.Fatal(err)
	}
	if stream != nil {
		stream.Close()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("extended CONNECT: status %d, want 501", resp.StatusCode)
	}
	get, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = cc.RoundTrip(get)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("GET: status %d, want 501", resp.StatusCode)
	}

	if n := srv.Accepted(); n != 1 {
		t.Errorf("%d QUIC connections accepted, want 1", n)
	}
	qc.CloseWithError(0, "incapable")
	if err := srv.WaitOpen(ctx, 0); err != nil {
		t.Error(err)
	}
}

func mustConnect(t *testing.T, ctx context.Context, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestH3CloseConnections checks that both kinds of H3Server close their
// connections on CloseConnections and go on serving.
func TestH3CloseConnections(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	for _, tc := range []struct {
		name  string
		start func(net.PacketConn, *tls.Config) (*H3Server, error)
	}{
		{"h3", func(pc net.PacketConn, c *tls.Config) (*H3Server, error) { return StartH3(pc, c, EchoHandler()) }},
		{"h3-no-extended-connect", StartH3NoExtendedConnect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conf, err := ca.ServerConfig("127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			srv, err := tc.start(pc, conf)
			if err != nil {
				pc.Close()
				t.Fatal(err)
			}
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			qc, _ := dialH3(t, ca, srv.Addr())
			if err := srv.WaitOpen(ctx, 1); err != nil {
				t.Fatal(err)
			}
			srv.CloseConnections()
			if n := srv.Open(); n != 0 {
				t.Errorf("%d connections open after CloseConnections", n)
			}
			select {
			case <-qc.Context().Done():
			case <-ctx.Done():
				t.Fatal("the client's connection is still open")
			}
			dialH3(t, ca, srv.Addr())
			if err := srv.WaitOpen(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if n := srv.Accepted(); n != 2 {
				t.Errorf("%d connections accepted, want 2", n)
			}
		})
	}
}
