package testkit

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go/http3"

	"github.com/eyeballs/dialer/internal/loopback"
)

// The types, constants and functions below are internal/loopback's, where
// their documentation is.

type (
	CA            = loopback.CA
	Counter       = loopback.Counter
	Fault         = loopback.Fault
	Proxy         = loopback.Proxy
	Impaired      = loopback.Impaired
	Impairment    = loopback.Impairment
	HTTPServer    = loopback.HTTPServer
	H2FakeServer  = loopback.H2FakeServer
	H2FaultServer = loopback.H2FaultServer
	H2Fault       = loopback.H2Fault
	H3Server      = loopback.H3Server
	H3Frontend    = loopback.H3Frontend
	H3Fault       = loopback.H3Fault
	WTServer      = loopback.WTServer
	WTH2Server    = loopback.WTH2Server
	WTClose       = loopback.WTClose
)

const (
	H2CloseAfterSettings  = loopback.H2CloseAfterSettings
	H2SettingsBadLength   = loopback.H2SettingsBadLength
	H2SettingsTooLarge    = loopback.H2SettingsTooLarge
	H2SettingsTooLargeLen = loopback.H2SettingsTooLargeLen
	H3CloseAfterSettings  = loopback.H3CloseAfterSettings
	H3SettingsMalformed   = loopback.H3SettingsMalformed
	H3SettingsDuplicate   = loopback.H3SettingsDuplicate
	WTPushBidi            = loopback.WTPushBidi
	WTPushUni             = loopback.WTPushUni
)

// WTProtocols are the WebTransport application protocols a WTServer
// selects from; the same slice as loopback.WTProtocols.
var WTProtocols = loopback.WTProtocols

func NewCA() (*CA, error)                { return loopback.NewCA() }
func NewCounter(l net.Listener) *Counter { return loopback.NewCounter(l) }
func EchoHandler() http.Handler          { return loopback.EchoHandler() }
func AcceptWebSocket(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) (*websocket.Conn, error) {
	return loopback.AcceptWebSocket(w, r, opts)
}
func ListenPair() (v4, v6 net.Listener, port int, err error) { return loopback.ListenPair() }
func ListenUDPPair() (v4, v6 *net.UDPConn, port int, err error) {
	return loopback.ListenUDPPair()
}

func Blackhole(addr string) (*Fault, error)    { return loopback.Blackhole(addr) }
func UDPBlackhole(addr string) (*Fault, error) { return loopback.UDPBlackhole(addr) }
func TLSStall(addr string) (*Fault, error)     { return loopback.TLSStall(addr) }
func Reset(addr string) (*Fault, error)        { return loopback.Reset(addr) }

func LatencyTCP(listenAddr, upstream string, oneWay time.Duration) (*Proxy, error) {
	return loopback.LatencyTCP(listenAddr, upstream, oneWay)
}
func LatencyUDP(listenAddr, upstream string, oneWay time.Duration) (*Proxy, error) {
	return loopback.LatencyUDP(listenAddr, upstream, oneWay)
}
func LatencyJitterTCP(listenAddr, upstream string, oneWay, jitter time.Duration) (*Impaired, error) {
	return loopback.LatencyJitterTCP(listenAddr, upstream, oneWay, jitter)
}
func LatencyJitterUDP(listenAddr, upstream string, oneWay, jitter time.Duration) (*Impaired, error) {
	return loopback.LatencyJitterUDP(listenAddr, upstream, oneWay, jitter)
}
func ImpairTCP(listenAddr, upstream string, im Impairment) (*Impaired, error) {
	return loopback.ImpairTCP(listenAddr, upstream, im)
}
func ImpairUDP(listenAddr, upstream string, im Impairment) (*Impaired, error) {
	return loopback.ImpairUDP(listenAddr, upstream, im)
}
func DropUDP(listenAddr, upstream string, n int) (*Impaired, error) {
	return loopback.DropUDP(listenAddr, upstream, n)
}

func StartHTTP(l net.Listener, tlsConf *tls.Config, h http.Handler) (*HTTPServer, error) {
	return loopback.StartHTTP(l, tlsConf, h)
}
func StartServer(l net.Listener, srv *http.Server) (*HTTPServer, error) {
	return loopback.StartServer(l, srv)
}
func SlowWrites(l net.Listener, d time.Duration) net.Listener { return loopback.SlowWrites(l, d) }
func StartSlowTLS(l net.Listener, tlsConf *tls.Config, h http.Handler, d time.Duration) (*HTTPServer, error) {
	return loopback.StartSlowTLS(l, tlsConf, h, d)
}

func StartH2NoExtendedConnect(l net.Listener, tlsConf *tls.Config, h http.Handler) (*H2FakeServer, error) {
	return loopback.StartH2NoExtendedConnect(l, tlsConf, h)
}
func StartH2Fault(l net.Listener, tlsConf *tls.Config, fault H2Fault, h http.Handler) (*H2FaultServer, error) {
	return loopback.StartH2Fault(l, tlsConf, fault, h)
}
func H2FaultPreface(fault H2Fault) []byte { return loopback.H2FaultPreface(fault) }
func StartWebTransportH2(l net.Listener, tlsConf *tls.Config) (*WTH2Server, error) {
	return loopback.StartWebTransportH2(l, tlsConf)
}

// StartWebTransportH2Draft13 is StartWebTransportH2 speaking
// draft-ietf-webtrans-http2-13 as @fails-components/webtransport does.
func StartWebTransportH2Draft13(l net.Listener, tlsConf *tls.Config) (*WTH2Server, error) {
	return loopback.StartWebTransportH2Draft13(l, tlsConf)
}
func StartH2NoWebTransport(l net.Listener, tlsConf *tls.Config) (*WTH2Server, error) {
	return loopback.StartH2NoWebTransport(l, tlsConf)
}

func StartH3(pc net.PacketConn, tlsConf *tls.Config, h http.Handler) (*H3Server, error) {
	return loopback.StartH3(pc, tlsConf, h)
}
func StartH3Server(pc net.PacketConn, srv *http3.Server, front H3Frontend) (*H3Server, error) {
	return loopback.StartH3Server(pc, srv, front)
}
func StartH3NoExtendedConnect(pc net.PacketConn, tlsConf *tls.Config) (*H3Server, error) {
	return loopback.StartH3NoExtendedConnect(pc, tlsConf)
}
func StartH3NoWebTransport(pc net.PacketConn, tlsConf *tls.Config) (*H3Server, error) {
	return loopback.StartH3NoWebTransport(pc, tlsConf)
}
func StartH3Fault(pc net.PacketConn, tlsConf *tls.Config, fault H3Fault) (*H3Server, error) {
	return loopback.StartH3Fault(pc, tlsConf, fault)
}
func H3FaultSettings(fault H3Fault) []byte { return loopback.H3FaultSettings(fault) }
func StartWebTransport(pc net.PacketConn, tlsConf *tls.Config) (*WTServer, error) {
	return loopback.StartWebTransport(pc, tlsConf)
}
