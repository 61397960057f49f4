package resolver

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/eyeballs/dialer/internal/loopback"
	"github.com/miekg/dns"
)

// startDoH starts an HTTPS server (HTTP/2) on 127.0.0.1 with h, and returns
// a resolver asking it over DoH through an http.Transport that trusts the
// server's CA.
func startDoH(t *testing.T, timeout time.Duration, h http.HandlerFunc) *Resolver {
	t.Helper()
	ca, err := loopback.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := ca.ServerConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = conf
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tr := &http.Transport{TLSClientConfig: ca.ClientConfig(), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	d := NewDoH(DoHConfig{URL: srv.URL + "/dns-query", Transport: tr})
	r := newResolver(t, Config{Upstreams: []Server{d}, Timeout: timeout, MaxCacheEntries: -1})
	t.Cleanup(r.CloseIdle)
	return r
}

// dohAnswer reads a DoH request and answers it with answerA, checking
// what RFC 8484 asks of the request.
func dohAnswer(t *testing.T, w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != dnsMessage || r.Header.Get("Accept") != dnsMessage {
		t.Errorf("request %s, Content-Type %q, Accept %q", r.Method, r.Header.Get("Content-Type"), r.Header.Get("Accept"))
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if len(b)%paddingBlock != 0 {
		t.Errorf("query of %d octets, not padded to %d-octet blocks (RFC 8467)", len(b), paddingBlock)
	}
	q := new(dns.Msg)
	if err := q.Unpack(b); err != nil {
		t.Errorf("query: %v", err)
		return
	}
	if q.Id != 0 {
		t.Errorf("query ID %d, want 0 (RFC 8484 §4.1)", q.Id)
	}
	out, _ := answerA(q).Pack()
	w.Header().Set("Content-Type", dnsMessage)
	w.Write(out)
}

// TestDoHLookup resolves over DoH, twice on one HTTP/2 connection.
func TestDoHLookup(t *testing.T) {
	protos := make(chan int, 2)
	r := startDoH(t, 5*time.Second, func(w http.ResponseWriter, req *http.Request) {
		protos <- req.ProtoMajor
		dohAnswer(t, w, req)
	})
	wantAddrs(t, lookup(t, r, "a.test", hev3.A), "192.0.2.1")
	wantAddrs(t, lookup(t, r, "b.test", hev3.A), "192.0.2.1")
	if p := <-protos; p != 2 {
		t.Errorf("HTTP/%d, want HTTP/2", p)
	}
}

// TestDoHHostile: answers that are not a DNS reply are errors, at once.
func TestDoHHostile(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want error
	}{
		{"HTTP 500", func(w http.ResponseWriter, r *http.Request) {
			// A body that parses as a DNS reply must still not count.
			w.Header().Set("Content-Type", dnsMessage)
			w.WriteHeader(http.StatusInternalServerError)
		}, ErrHTTPStatus},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}, ErrHTTPStatus},
		{"wrong content type", func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			q := new(dns.Msg)
			q.Unpack(b)
			out, _ := answerA(q).Pack()
			w.Header().Set("Content-Type", "text/html")
			w.Write(out)
		}, ErrMalformed},
		{"oversized body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", dnsMessage)
			w.Write([]byte(strings.Repeat("x", 70000)))
		}, ErrMalformed},
		{"nonzero ID", func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			q := new(dns.Msg)
			q.Unpack(b)
			a := answerA(q)
			a.Id = 7
			out, _ := a.Pack()
			w.Header().Set("Content-Type", dnsMessage)
			w.Write(out)
		}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startDoH(t, 5*time.Second, tc.h)
			start := time.Now()
			ans := lookup(t, r, "a.test", hev3.A)
			if !errors.Is(ans.Err, tc.want) {
				t.Fatalf("error %v, want %v", ans.Err, tc.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// TestDoHSlowServer: a server that does not answer times the query out
// after the Resolver's timeout.
func TestDoHSlowServer(t *testing.T) {
	release := make(chan struct{})
	r := startDoH(t, 200*time.Millisecond, func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-release:
		case <-req.Context().Done():
		}
	})
	defer close(release)
	start := time.Now()
	ans := lookup(t, r, "a.test", hev3.A)
	if !errors.Is(ans.Err, ErrTimeout) {
		t.Fatalf("error %v, want ErrTimeout", ans.Err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v, want about the 200ms timeout", d)
	}
}
