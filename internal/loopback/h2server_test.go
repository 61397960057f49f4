package loopback

import (
	"crypto/tls"
	"net"
	"slices"
	"testing"

	"golang.org/x/net/http2"

	"github.com/eyeballs/dialer/internal/wt2"
)

// TestStartH2Server: the SETTINGS and ALPN of each configuration of the
// package's own HTTP/2 server.
func TestStartH2Server(t *testing.T) {
	t.Parallel()
	ca := mustCA(t)
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		c         H2Config
		alpn      []string
		ext, wtOn bool
	}{
		{"extended CONNECT", H2Config{HTTP1: true, HTTP2: true, ExtendedConnect: true}, []string{"h2", "http/1.1"}, true, false},
		{"WebTransport", H2Config{HTTP2: true, WebTransport: true}, []string{"h2"}, true, true},
		{"plain h2", H2Config{HTTP1: true, HTTP2: true}, []string{"h2", "http/1.1"}, false, false},
		{"http/1.1 only", H2Config{HTTP1: true}, []string{"http/1.1"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv, err := StartH2Server(l, conf, tc.c)
			if err != nil {
				l.Close()
				t.Fatal(err)
			}
			defer srv.Close()
			if !slices.Equal(srv.tlsConf.NextProtos, tc.alpn) {
				t.Errorf("ALPN %q, want %q", srv.tlsConf.NextProtos, tc.alpn)
			}
			if !tc.c.HTTP2 {
				cc := ca.ClientConfig()
				cc.NextProtos = []string{"h2", "http/1.1"}
				c, err := tls.Dial("tcp", l.Addr().String(), cc)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
					t.Errorf("negotiated %q, want http/1.1", p)
				}
				return
			}
			p := newH2Peer(t, ca, l.Addr().String())
			s := p.serverSettings(t)
			if got := s[http2.SettingEnableConnectProtocol] == 1; got != tc.ext {
				t.Errorf("ENABLE_CONNECT_PROTOCOL %v, want %v (SETTINGS %v)", got, tc.ext, s)
			}
			if _, got := s[wt2.SettingWTEnabled]; got != tc.wtOn {
				t.Errorf("WebTransport setting %v, want %v (SETTINGS %v)", got, tc.wtOn, s)
			}
		})
	}
	l, _ := net.Listen("tcp4", "127.0.0.1:0")
	defer l.Close()
	if srv, err := StartH2Server(l, conf, H2Config{}); err == nil {
		srv.Close()
		t.Error("a server of neither HTTP/1.1 nor HTTP/2 started")
	}
}
