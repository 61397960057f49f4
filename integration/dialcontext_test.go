package integration

import (
	"errors"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/eyeballs/dialer"
)

// TestDialContextHTTP: (*Dialer).DialContext as http.Transport.DialContext
// reaches a server by name through the test DNS server, over IPv4 when
// IPv6 is blackholed.
func TestDialContextHTTP(t *testing.T) {
	e := newEnv(t, true, serve, blackhole)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	var rep *dialer.Report
	d := e.dialer(dialer.WithReport(func(r *dialer.Report) { rep = r }))
	tr := &http.Transport{DialContext: d.DialContext, TLSClientConfig: e.ca.ClientConfig(), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	// The echo endpoint answers a plain GET with 426 Upgrade Required or
	// similar; any answer proves the connection.
	resp, err := client.Get("https://" + host + ":" + itoa(e.port) + "/echo")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("HTTP/%d, want HTTP/2 through the raced TCP connection", resp.ProtoMajor)
	}
	if rep.Winner != 1 || rep.Attempts[1].Family != "IPv4" || rep.Attempts[1].Proto != "tcp" {
		t.Errorf("want the IPv4 tcp attempt to win\n%s", rep)
	}
}

// TestDialContextNetworks: tcp4 and tcp6 restrict the family; other
// networks and malformed addresses are refused without dialing.
func TestDialContextNetworks(t *testing.T) {
	e := newEnv(t, false, serve, serve)
	e.dns.A(host, "127.0.0.1")
	e.dns.AAAA(host, "::1")
	d := e.dialer()
	for network, want := range map[string]string{"tcp4": "127.0.0.1", "tcp6": "::1", "tcp": "::1"} {
		c, err := d.DialContext(ctx(t), network, net.JoinHostPort(host, itoa(e.port)))
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		got, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		c.Close()
		if got != want {
			t.Errorf("%s: connected to %s, want %s", network, got, want)
		}
	}
	if _, err := d.DialContext(ctx(t), "udp", "127.0.0.1:1"); err == nil {
		t.Error("udp accepted")
	}
	var de *dialer.DialError
	if _, err := d.DialContext(ctx(t), "tcp", "no-port"); !errors.As(err, &de) || de.Stage != "url" {
		t.Errorf("missing port: want a url-stage DialError, got %v", err)
	}
	// IP literals skip DNS.
	before := len(e.dns.Queries())
	c, err := d.DialContext(ctx(t), "tcp", net.JoinHostPort("127.0.0.1", itoa(e.port)))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if n := len(e.dns.Queries()); n != before {
		t.Errorf("an IP literal caused %d DNS queries", n-before)
	}
}
