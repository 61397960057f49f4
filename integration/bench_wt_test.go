package integration

import (
	"context"
	"crypto/tls"
	"net"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/webtransport-go"
)

// BenchmarkDialWebTransport measures the time to a ready WebTransport
// session on loopback: webtransport-go's own Transport.Dial (a fresh QUIC
// connection per session, the baseline) against this dialer on a fresh
// connection and as a new session on its pooled connection.
func BenchmarkDialWebTransport(b *testing.B) {
	e := newEnv(b, true, closed, closed)
	e.quic(wt, noUDP)
	url := "https://127.0.0.1:" + itoa(e.port) + "/wt"
	b.Run("webtransport-go", func(b *testing.B) {
		tr := &webtransport.Transport{TLSClientConfig: e.ca.ClientConfig()}
		defer tr.Close()
		for b.Loop() {
			_, s, err := tr.Dial(context.Background(), url, nil)
			if err != nil {
				b.Fatal(err)
			}
			s.CloseWithError(0, "")
		}
	})
	dial := func(b *testing.B, fresh bool) {
		d := e.dialer()
		defer d.CloseIdleConnections()
		for b.Loop() {
			s, _, err := d.DialWebTransport(context.Background(), url)
			if err != nil {
				b.Fatal(err)
			}
			s.CloseWithError(0, "")
			if fresh {
				d.CloseIdleConnections()
			}
		}
	}
	b.Run("dialer-fresh", func(b *testing.B) { dial(b, true) })
	b.Run("dialer-reuse", func(b *testing.B) { dial(b, false) })
}

// BenchmarkWebTransportFallback measures the time to a session when one
// family's UDP is blackholed. webtransport-go dials one address: given the
// name, it resolves it (here through the test DNS server) and Go's
// ResolveUDPAddr picks IPv4 first, so only a blackholed IPv4 hurts it, and
// then it fails after quic-go's 5 s handshake timeout. This dialer races
// both families.
func BenchmarkWebTransportFallback(b *testing.B) {
	for _, tc := range []struct {
		name   string
		v4, v6 udpMode
	}{{"ipv6-blackholed", wt, udpBlackhole}, {"ipv4-blackholed", udpBlackhole, wt}} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b, true, closed, closed)
			e.quic(tc.v4, tc.v6)
			e.dns.A(host, "127.0.0.1")
			e.dns.AAAA(host, "::1")
			b.Run("webtransport-go", func(b *testing.B) {
				res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
					var nd net.Dialer
					return nd.DialContext(ctx, network, e.dns.Addr())
				}}
				tr := &webtransport.Transport{
					TLSClientConfig: e.ca.ClientConfig(),
					DialAddr: func(ctx context.Context, addr string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
						h, p, _ := net.SplitHostPort(addr)
						ips, err := res.LookupNetIP(ctx, "ip", h)
						if err != nil {
							return nil, err
						}
						// What net.ResolveUDPAddr does: IPv4 first.
						ip := ips[0]
						for _, a := range ips {
							if a.Is4() {
								ip = a
								break
							}
						}
						return quic.DialAddrEarly(ctx, net.JoinHostPort(ip.String(), p), tc, qc)
					},
				}
				defer tr.Close()
				for b.Loop() {
					_, s, err := tr.Dial(context.Background(), e.wtURL(), nil)
					if err != nil {
						b.Logf("webtransport-go: %v", err)
						continue
					}
					s.CloseWithError(0, "")
				}
			})
			b.Run("dialer", func(b *testing.B) {
				d := e.dialer()
				defer d.CloseIdleConnections()
				for b.Loop() {
					s, _, err := d.DialWebTransport(context.Background(), e.wtURL())
					if err != nil {
						b.Fatal(err)
					}
					s.CloseWithError(0, "")
					d.CloseIdleConnections()
				}
			})
		})
	}
}
