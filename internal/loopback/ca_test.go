package loopback

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
)

// handshake runs a TLS handshake over loopback TCP between server and a
// client that trusts roots and asks for serverName, and returns the client's
// error. (net.Pipe would deadlock: it has no buffer, and a client that
// rejects the certificate writes its alert while the server is still
// writing its flight.)
func handshake(t *testing.T, server *tls.Config, roots *x509.CertPool, serverName string) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc, err := l.Accept()
		if err != nil {
			return
		}
		defer sc.Close()
		_ = tls.Server(sc, server).Handshake()
	}()
	defer func() { <-done }()
	cc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	return tls.Client(cc, &tls.Config{RootCAs: roots, ServerName: serverName}).Handshake()
}

func TestCAServerConfig(t *testing.T) {
	t.Parallel()
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := ca.ServerConfig("localhost", "example.test", "*.example.test", "127.0.0.1", "::1")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "example.test", "a.example.test", "127.0.0.1", "::1"} {
		if err := handshake(t, conf, ca.Pool(), name); err != nil {
			t.Errorf("ServerName %q: %v", name, err)
		}
	}
	for _, name := range []string{"other.test", "a.b.example.test", "127.0.0.2", "::2"} {
		err := handshake(t, conf, ca.Pool(), name)
		var he x509.HostnameError
		if !errors.As(err, &he) {
			t.Errorf("ServerName %q: %v, want a hostname error", name, err)
		}
	}

	other, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	err = handshake(t, conf, other.Pool(), "localhost")
	var ua x509.UnknownAuthorityError
	if !errors.As(err, &ua) {
		t.Errorf("other CA's pool: %v, want an unknown authority error", err)
	}

	fromPEM := x509.NewCertPool()
	if !fromPEM.AppendCertsFromPEM(ca.PEM()) {
		t.Fatal("PEM() does not parse")
	}
	if err := handshake(t, conf, fromPEM, "localhost"); err != nil {
		t.Errorf("pool from PEM(): %v", err)
	}
	cc := ca.ClientConfig()
	if err := handshake(t, conf, cc.RootCAs, "::1"); err != nil {
		t.Errorf("ClientConfig roots: %v", err)
	}
	if _, err := ca.ServerConfig(); err == nil {
		t.Error("ServerConfig() with no names succeeded")
	}
}
