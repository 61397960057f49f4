package dialer

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/http/httpguts"
)

// FuzzParseURL checks the URL handling of DialWebSocket and DialWebTransport
// (parseURL, splitHostPort, hostOrLiteral) and the address handling of
// DialContext: whatever is accepted has a host, a port in 1..65535, and is
// either a DNS name or an IP literal, never neither nor both.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"wss://example.com/chat",
		"ws://example.com:8080/chat?x=1",
		"https://example.com./",
		"http://[2001:db8::1]:443/",
		"wss://[::ffff:192.0.2.1]/",
		"wss://192.0.2.1:0/",
		"wss://[fe80::1%25eth0]:443/",
		"wss://example.com:65536/",
		"wss://example.com#frag",
		"wss://user:pass@example.com:443",
		"wss://:443/",
		"ftp://example.com/",
		"example.com:443",
		"[::1]:80",
		"::1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, schemes := range [][]string{{"ws", "wss", "http", "https"}, {"https"}} {
			u, err := parseURL(raw, schemes...)
			if err != nil {
				continue
			}
			if u.Host == "" || u.Fragment != "" || !slices.Contains(schemes, u.Scheme) {
				t.Fatalf("parseURL(%q, %q) accepted %#v", raw, schemes, u)
			}
			// coder/websocket parses u.String() again for the handshake.
			if u2, err := url.Parse(u.String()); err != nil || u2.Host != u.Host || u2.Scheme != u.Scheme {
				t.Errorf("%q: %q parses as %#v, %v", raw, u.String(), u2, err)
			}
			secure := u.Scheme == "wss" || u.Scheme == "https"
			host, port, err := splitHostPort(u.Host, defaultPort(secure))
			if err == nil {
				checkHostPort(t, u.Host, host, port)
			}
		}
		// DialContext's address, and the Transport's request host.
		for _, def := range []string{"", "443"} {
			if host, port, err := splitHostPort(raw, def); err == nil {
				checkHostPort(t, raw, host, port)
			}
		}
	})
}

func checkHostPort(t *testing.T, in, host string, port uint16) {
	t.Helper()
	if host == "" || port == 0 {
		t.Fatalf("splitHostPort(%q) = %q, %d", in, host, port)
	}
	name, lit := hostOrLiteral(host)
	if lit.IsValid() == (name != "") {
		t.Fatalf("hostOrLiteral(%q) = %q, %v: want a name or a literal", host, name, lit)
	}
	if strings.HasSuffix(name, ".") {
		t.Fatalf("hostOrLiteral(%q) = %q: an empty label", host, name)
	}
	if lit.IsValid() && (lit.Zone() != "" || lit.Is4In6()) {
		t.Errorf("hostOrLiteral(%q) = literal %v", host, lit)
	}
}

// FuzzAltSvc checks parseAltSvcH3 on Alt-Svc values from servers: what it
// returns comes from the value (or the defaults), with a port that is not
// zero and a max age that is not negative.
func FuzzAltSvc(f *testing.F) {
	for _, s := range []string{
		`h3=":443"; ma=86400`,
		`h3=":8443"`,
		`h2=":443", h3=":4433"; ma=60; persist=1`,
		`h3="other.example:443", h3=":444"`,
		`h3-29=":443"; ma=3600`,
		`clear`,
		` clear `,
		`h3=":0"`,
		`h3=":65536"`,
		`h3=":443"; ma="4294967295"`,
		`h3=":443"; ma=-1`,
		`h3=":443";ma=1;ma=2`,
		`h3=443`,
		``,
	} {
		f.Add(s, uint16(443))
	}
	f.Fuzz(func(t *testing.T, v string, origPort uint16) {
		if origPort == 0 {
			origPort = 443 // splitHostPort never gives 0
		}
		port, maxAge, ok := parseAltSvcH3(v, origPort)
		if !ok {
			if port != 0 || maxAge != 0 {
				t.Errorf("%q: not ok, yet port %d, max age %v", v, port, maxAge)
			}
			return
		}
		if port == 0 || maxAge < 0 || maxAge%time.Second != 0 {
			t.Fatalf("%q: port %d, max age %v", v, port, maxAge)
		}
		if strings.TrimSpace(v) == "clear" {
			if port != origPort || maxAge != 0 {
				t.Errorf("clear: port %d, max age %v", port, maxAge)
			}
			return
		}
		if !strings.Contains(v, "h3=") || !strings.Contains(v, strconv.Itoa(int(port))) {
			t.Errorf("%q: port %d is not in the value", v, port)
		}
		if s := strconv.FormatInt(int64(maxAge/time.Second), 10); maxAge != defaultAltSvcMaxAge && !strings.Contains(v, s) {
			t.Errorf("%q: max age %v is not in the value", v, maxAge)
		}
	})
}

// nopStream is a WebSocket byte stream that has nothing to read.
type nopStream struct{}

func (nopStream) Read([]byte) (int, error)    { return 0, io.EOF }
func (nopStream) Write(p []byte) (int, error) { return len(p), nil }
func (nopStream) Close() error                { return nil }

// FuzzConnectRT checks the headers connectRT passes between coder/websocket
// and an extended CONNECT: a request header and the key from the client,
// Sec-WebSocket-Extensions, Sec-WebSocket-Protocol and another header from
// the server, and its status.
//
// RoundTrip must send the request's headers without Connection, Upgrade and
// Sec-WebSocket-Key, leave the request and the server's response unchanged,
// pass a response without a stream through, and turn one with a stream into
// a 101 with the server's headers and the Sec-WebSocket-Accept the key wants.
// Then coder/websocket's whole handshake through connectRT must succeed
// whatever the server's other headers are, as long as its subprotocol is one
// that was asked for and it sends no extension.
func FuzzConnectRT(f *testing.F) {
	f.Add("dGhlIHNhbXBsZSBub25jZQ==", "Origin", "https://example.com", "Server", "test", "", "chat", uint16(200), true)
	f.Add("x3JJHMbDL1EzLkh9GBhXDw==", "Sec-WebSocket-Key", "second", "Sec-WebSocket-Accept", "bogus", "permessage-deflate; client_no_context_takeover", "", uint16(200), true)
	f.Add("", "sec-websocket-protocol", "chat, superchat", "Connection", "close", "x-unknown", "other", uint16(204), true)
	f.Add("key", "Upgrade", "h2c", "Upgrade", "h2c", "", "", uint16(403), false)
	f.Add("key", "X-Empty", "", "Location", "/elsewhere", "", "", uint16(301), false)
	f.Fuzz(func(t *testing.T, key, reqName, reqValue, respName, respValue, ext, proto string, status uint16, withStream bool) {
		for _, v := range []string{key, reqValue, respValue, ext, proto} {
			if !httpguts.ValidHeaderFieldValue(v) {
				return
			}
		}
		if !httpguts.ValidHeaderFieldName(reqName) || !httpguts.ValidHeaderFieldName(respName) {
			return
		}
		status = 100 + status%500 // 100..599
		if withStream {
			status = 200 + status%100
		}
		serverHeader := func() http.Header {
			h := http.Header{}
			h.Add(respName, respValue)
			if ext != "" {
				h.Add("Sec-WebSocket-Extensions", ext)
			}
			if proto != "" {
				h.Add("Sec-WebSocket-Protocol", proto)
			}
			return h
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		// RoundTrip alone.
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://example.test/chat", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", key)
		req.Header.Add(reqName, reqValue)
		reqHeader := req.Header.Clone()
		var (
			sent   http.Header
			server = &http.Response{
				Status: strconv.Itoa(int(status)) + " " + http.StatusText(int(status)), StatusCode: int(status),
				Proto: "HTTP/2.0", ProtoMajor: 2, Header: serverHeader(), Body: http.NoBody,
			}
			stream io.ReadWriteCloser
		)
		serverCopy := server.Header.Clone()
		if withStream {
			stream = nopStream{}
		}
		rt := &connectRT{open: func(_ context.Context, hdr http.Header) (*http.Response, io.ReadWriteCloser, error) {
			sent = hdr
			return server, stream, nil
		}}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(req.Header, reqHeader) {
			t.Errorf("request header changed to %q, was %q", req.Header, reqHeader)
		}
		for k, v := range reqHeader {
			switch k {
			case "Connection", "Upgrade", "Sec-Websocket-Key":
				if _, ok := sent[k]; ok {
					t.Errorf("sent %s: %q", k, sent[k])
				}
			default:
				if !slices.Equal(sent[k], v) {
					t.Errorf("sent %s: %q, want %q", k, sent[k], v)
				}
			}
		}
		for k := range sent {
			if _, ok := reqHeader[k]; !ok {
				t.Errorf("sent %s: %q, not in the request", k, sent[k])
			}
		}
		if rt.resp != server || rt.stream != stream {
			t.Errorf("connectRT kept %p, %v; want the server's %p, %v", rt.resp, rt.stream, server, stream)
		}
		if !reflect.DeepEqual(server.Header, serverCopy) || server.StatusCode != int(status) {
			t.Errorf("server's response changed: %d %q, was %d %q", server.StatusCode, server.Header, status, serverCopy)
		}
		if !withStream {
			if resp != server {
				t.Errorf("response without a stream: got %+v, want the server's", resp)
			}
			return
		}
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Body != stream || resp.Request != req {
			t.Errorf("response %d, body %v, request %p; want 101, the stream, %p", resp.StatusCode, resp.Body, resp.Request, req)
		}
		if c, u := resp.Header.Values("Connection"), resp.Header.Values("Upgrade"); !slices.Equal(c, []string{"Upgrade"}) || !slices.Equal(u, []string{"websocket"}) {
			t.Errorf("Connection %q, Upgrade %q", c, u)
		}
		want := accept(req.Header.Get("Sec-WebSocket-Key"))
		if key == "dGhlIHNhbXBsZSBub25jZQ==" && want != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" { // RFC 6455 §1.3
			t.Fatalf("accept(%q) = %q", key, want)
		}
		if got := resp.Header.Values("Sec-WebSocket-Accept"); !slices.Equal(got, []string{want}) {
			t.Errorf("Sec-WebSocket-Accept %q for key %q, want %q", got, key, want)
		}
		for k, v := range serverCopy {
			switch k {
			case "Connection", "Upgrade", "Sec-Websocket-Accept":
			default:
				if !slices.Equal(resp.Header[k], v) {
					t.Errorf("101 %s: %q, server sent %q", k, resp.Header[k], v)
				}
			}
		}

		// coder/websocket's handshake through connectRT.
		header := http.Header{}
		header.Add(reqName, reqValue)
		server.Header = serverHeader()
		rt = &connectRT{open: func(context.Context, http.Header) (*http.Response, io.ReadWriteCloser, error) {
			return server, nopStream{}, nil
		}}
		subprotocols := []string{"chat", "superchat"}
		c, _, err := websocket.Dial(ctx, "wss://example.test/chat", &websocket.DialOptions{
			HTTPClient:   &http.Client{Transport: rt, CheckRedirect: noRedirect},
			HTTPHeader:   header,
			Subprotocols: subprotocols,
		})
		if err != nil {
			switch textproto.CanonicalMIMEHeaderKey(respName) {
			case "Sec-Websocket-Extensions", "Sec-Websocket-Protocol":
				return // the server's extra header said something more
			}
			if ext == "" && (proto == "" || slices.Contains(subprotocols, proto)) {
				t.Fatalf("handshake with extensions %q, subprotocol %q, %s: %q failed: %v", ext, proto, respName, respValue, err)
			}
			return
		}
		defer c.CloseNow()
		if got := c.Subprotocol(); got != "" && !slices.ContainsFunc(subprotocols, func(s string) bool { return strings.EqualFold(s, got) }) {
			t.Errorf("subprotocol %q, asked for %q", got, subprotocols)
		}
	})
}

// accept is RFC 6455's Sec-WebSocket-Accept for key.
func accept(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}
