package h2conn

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestRawInformationalBudget: the header lists of 1xx responses count,
// with the final response's, against our MAX_HEADER_LIST_SIZE (RFC 9113
// sections 6.5.2 and 8.1): a server that sends 103s without end gets its
// stream reset, with an error that names the limit.
func TestRawInformationalBudget(t *testing.T) {
	const limit = 16 << 10
	client, p := rawServer(t, Config{MaxHeaderListSize: limit})
	ctx := testCtx(t, 5*time.Second)
	s, err := client.OpenStream(ctx, reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	next[*http2.MetaHeadersFrame](p)
	link := strings.Repeat("l", 1000)
	hint := []hpack.HeaderField{{Name: ":status", Value: "103"}, {Name: "link", Value: link}}
	sent, n := uint64(0), 0
	for ; n < 40; n++ {
		p.headers(s.ID(), false, ":status", "103", "link", link)
		sent += headerListSize(hint)
	}
	p.headers(s.ID(), false, ":status", "200")
	_, err = s.Header(ctx)
	t.Logf("%d 103 responses of %d bytes each (%d in all), limit %d: %v", n, headerListSize(hint), sent, limit, err)
	var se *StreamError
	if !errors.As(err, &se) || se.Remote || se.Code != http2.ErrCodeProtocol {
		t.Fatalf("Header: %v, want our reset with PROTOCOL_ERROR", err)
	}
	if !errors.Is(err, ErrPeerHeaderListTooLarge) || !strings.Contains(err.Error(), "16384 bytes") {
		t.Fatalf("Header: %v, want ErrPeerHeaderListTooLarge naming the limit", err)
	}
	if rst := next[*http2.RSTStreamFrame](p); rst.StreamID != s.ID() || rst.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("RST_STREAM %d %v", rst.StreamID, rst.ErrCode)
	}
	if err := client.Err(); err != nil {
		t.Fatalf("connection ended: %v", err)
	}

	// Within the budget, 1xx responses are skipped and the final one is
	// read.
	s, err = client.OpenStream(ctx, reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	next[*http2.MetaHeadersFrame](p)
	for range 10 {
		p.headers(s.ID(), false, ":status", "103", "link", link)
	}
	p.headers(s.ID(), true, ":status", "204")
	if h, err := s.Header(ctx); err != nil || value(h, ":status") != "204" {
		t.Fatalf("Header after 10 hints: %v %v", h, err)
	}
}

// TestRawHPACKError: a header block HPACK cannot decode is a connection
// error of type COMPRESSION_ERROR (RFC 9113 section 4.3) that says so.
func TestRawHPACKError(t *testing.T) {
	client, p := rawServer(t, Config{})
	s, err := client.OpenStream(testCtx(t, 5*time.Second), reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	next[*http2.MetaHeadersFrame](p)
	// An indexed field with index 70: beyond the static table (61 entries)
	// and an empty dynamic table.
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.ID(), BlockFragment: []byte{0x80 | 70}, EndHeaders: true})
	ga := next[*http2.GoAwayFrame](p)
	t.Logf("GOAWAY %v %q; Err: %v", ga.ErrCode, ga.DebugData(), client.Err())
	if ga.ErrCode != http2.ErrCodeCompression || !strings.Contains(string(ga.DebugData()), "HPACK") {
		t.Fatalf("GOAWAY %v %q, want COMPRESSION_ERROR naming HPACK", ga.ErrCode, ga.DebugData())
	}
	<-client.Done()
	var ge *GoAwayError
	if err := client.Err(); !errors.As(err, &ge) || ge.Remote || !errors.Is(err, ErrHPACK) {
		t.Fatalf("Err = %v, want our GOAWAY matching ErrHPACK", err)
	}
}

// TestRawHeaderBlockFlood: a header block whose fragments keep coming
// after it passed the limit (a CONTINUATION flood) ends the connection,
// with an error that names the header list limit.
func TestRawHeaderBlockFlood(t *testing.T) {
	const limit = 4096
	client, p := rawServer(t, Config{MaxHeaderListSize: limit})
	s, err := client.OpenStream(testCtx(t, 5*time.Second), reqFields("GET", "/"), true)
	if err != nil {
		t.Fatal(err)
	}
	next[*http2.MetaHeadersFrame](p)
	big := strings.Repeat("v", 3000)
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.ID(), BlockFragment: p.block(":status", "200", "x-a", big)})
	go func() {
		// Until the client hangs up.
		for i := 0; ; i++ {
			if p.fr.WriteContinuation(s.ID(), false, p.block("x-b", big)) != nil {
				return
			}
		}
	}()
	ga := next[*http2.GoAwayFrame](p)
	t.Logf("GOAWAY %v %q", ga.ErrCode, ga.DebugData())
	if ga.ErrCode != http2.ErrCodeProtocol || !strings.Contains(string(ga.DebugData()), "header") {
		t.Fatalf("GOAWAY %v %q, want PROTOCOL_ERROR naming the header list", ga.ErrCode, ga.DebugData())
	}
	<-client.Done()
	if err := client.Err(); !errors.Is(err, ErrPeerHeaderListTooLarge) {
		t.Fatalf("Err = %v, want ErrPeerHeaderListTooLarge", err)
	}
}
