package testkit

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
)

func TestMain(m *testing.M) {
	if code, ok := EnsureXConnect(); ok {
		os.Exit(code)
	}
	goleak.VerifyTestMain(m)
}

// TestXConnectAdvertised checks that this process, re-executed by TestMain,
// runs with the GODEBUG setting and that StartHTTP's HTTP/2 side (net/http)
// therefore advertises SETTINGS_ENABLE_CONNECT_PROTOCOL: what the
// integration tests' servers rely on, and the reason H2FakeServer exists.
func TestXConnectAdvertised(t *testing.T) {
	if !XConnectEnabled() {
		t.Fatalf("GODEBUG=%q after EnsureXConnect", os.Getenv("GODEBUG"))
	}
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := StartHTTP(l, conf, EchoHandler())
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	defer srv.Close()
	cconf := ca.ClientConfig()
	cconf.NextProtos = []string{http2.NextProtoTLS}
	c, err := tls.Dial("tcp", l.Addr().String(), cconf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatalf("server's first frame is %v, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingEnableConnectProtocol); !ok || v != 1 {
		t.Errorf("net/http SETTINGS lack ENABLE_CONNECT_PROTOCOL=1")
	}
}
