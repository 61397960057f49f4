package wt2

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
	"golang.org/x/net/http2"
)

// failsSettings are the SETTINGS @fails-components/webtransport 1.6.8 sends
// (lib/http2/node/server.js): extended CONNECT and -13's initial limits.
var failsSettings = map[http2.SettingID]uint32{
	0x8: 1, 0x2b61: 16384, 0x2b62: 16384, 0x2b63: 16384, 0x2b64: 100, 0x2b65: 100,
}

func TestNegotiate(t *testing.T) {
	for _, tt := range []struct {
		name string
		peer map[http2.SettingID]uint32
		want Dialect
		err  []string // what the error names; nil: no error
	}{
		{"draft-15", settingsMap(ServerSettings(nil)), Draft15, nil},
		{"draft-15 without limits", map[http2.SettingID]uint32{0x8: 1, 0x2b60: 1}, Draft15, nil},
		{"draft-15 wins over -13 limits", map[http2.SettingID]uint32{0x8: 1, 0x2b60: 1, 0x2b61: 5}, Draft15, nil},
		{"fails-components", failsSettings, Draft13, nil},
		{"draft-13 with one limit", map[http2.SettingID]uint32{0x8: 1, 0x2b64: 0}, Draft13, nil},
		{"draft-13 settings of ours", settingsMap(ServerSettings(&Config{Dialect: Draft13})), Draft13, nil},
		{"extended CONNECT only", map[http2.SettingID]uint32{0x8: 1}, 0, []string{"no SETTINGS_WT_ENABLED (draft-15) nor SETTINGS_WT_INITIAL_* (draft-13)"}},
		{"nothing", nil, 0, []string{"no SETTINGS_ENABLE_CONNECT_PROTOCOL", "no SETTINGS_WT_ENABLED"}},
		{"-13 limits without extended CONNECT", map[http2.SettingID]uint32{0x2b61: 1}, 0, []string{"no SETTINGS_ENABLE_CONNECT_PROTOCOL"}},
		{"draft-14", map[http2.SettingID]uint32{0x8: 1, 0x2b61: 1, 0x2b66: 1}, 0, []string{"draft-14 is not supported"}},
		{"WT_ENABLED 0", map[http2.SettingID]uint32{0x8: 1, 0x2b60: 0, 0x2b61: 1}, 0, []string{"SETTINGS_WT_ENABLED = 0"}},
		{"WT_ENABLED 2", map[http2.SettingID]uint32{0x8: 1, 0x2b60: 2}, 0, []string{"SETTINGS_WT_ENABLED = 2", "PROTOCOL_ERROR"}},
		{"extended CONNECT 0", map[http2.SettingID]uint32{0x8: 0, 0x2b60: 1}, 0, []string{"no SETTINGS_ENABLE_CONNECT_PROTOCOL"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Negotiate(tt.peer)
			if tt.err == nil {
				if err != nil || d != tt.want {
					t.Fatalf("Negotiate = %v, %v; want %v", d, err, tt.want)
				}
				if CheckSettings(tt.peer) != nil {
					t.Errorf("CheckSettings = %v", CheckSettings(tt.peer))
				}
				return
			}
			if !errors.Is(err, ErrNotSupported) || !errors.Is(CheckSettings(tt.peer), ErrNotSupported) {
				t.Fatalf("Negotiate = %v, %v; want ErrNotSupported", d, err)
			}
			for _, w := range tt.err {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}

func TestDialectServerSettings(t *testing.T) {
	cfg := Config{Dialect: Draft13, MaxData: 1000, MaxStreamData: 100, MaxIncomingStreams: 3, MaxIncomingUniStreams: 4}
	got := settingsMap(ServerSettings(&cfg))
	want := map[http2.SettingID]uint32{0x5: 64 << 10, 0x8: 1, 0x2b61: 1000, 0x2b62: 100, 0x2b63: 100, 0x2b64: 4, 0x2b65: 3}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("draft-13 server settings %v, want %v", got, want)
	}
	for _, d := range []Dialect{Draft15, Draft13} {
		if n, err := Negotiate(settingsMap(ServerSettings(&Config{Dialect: d}))); n != d || err != nil {
			t.Errorf("%v server's SETTINGS negotiate %v, %v", d, n, err)
		}
	}
	if Draft15.String() != Draft || Draft13.String() != "draft-ietf-webtrans-http2-13" || Dialect(9).String() != "wt2.Dialect(9)" {
		t.Errorf("names %q %q %q", Draft15, Draft13, Dialect(9))
	}
}

// Each dialect's capsule renaming is its own inverse, so that one table
// serves reading and writing.
func TestDialectRenameInvolution(t *testing.T) {
	for d, w := range wires {
		for k, v := range w.rename {
			if w.rename[v] != k {
				t.Errorf("%v: 0x%x -> 0x%x -> 0x%x", Dialect(d), uint64(k), uint64(v), uint64(w.rename[v]))
			}
		}
	}
}

// Two sessions of the same dialect: streams both ways carry data, FIN and
// resets, and stream IDs follow the dialect's initiator rule.
func TestDialectPairs(t *testing.T) {
	for _, d := range []Dialect{Draft15, Draft13} {
		t.Run(d.String(), func(t *testing.T) {
			client, server := newPair(t, Config{Dialect: d}, Config{Dialect: d})
			ctx := testCtx(t)
			wgS, wgC := echoStreams(server), echoStreams(client)
			defer wgS.Wait()
			defer wgC.Wait()
			defer client.CloseWithError(0, "")
			clientBit := uint64(0)
			if d == Draft13 {
				clientBit = 1 // client-initiated IDs are odd
			}
			for i, s := range []*Session{client, server} {
				bit := clientBit ^ uint64(i)
				str, err := s.OpenStreamSync(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if str.StreamID()&3 != bit {
					t.Errorf("bidi stream ID %d, want low bits %d", str.StreamID(), bit)
				}
				str.SetDeadline(time.Now().Add(testTimeout))
				msg := pattern(i, 70_000)
				if got := roundTrip(t, str, msg); !bytes.Equal(got, msg) {
					t.Errorf("echo of %d bytes: %d bytes", len(msg), len(got))
				}
				peer := []*Session{server, client}[i]
				w, err := s.OpenUniStreamSync(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if w.StreamID()&3 != uniBit|bit {
					t.Errorf("uni stream ID %d, want low bits %d", w.StreamID(), uniBit|bit)
				}
				w.Write([]byte("partial"))
				r, err := peer.AcceptUniStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				r.SetReadDeadline(time.Now().Add(testTimeout))
				w.CancelWrite(7)
				if _, err := io.ReadAll(r); asStreamError(t, err).Code != 7 {
					t.Errorf("read after reset: %v", err)
				}
			}
		})
	}
}

// The wire of Draft13 as a raw server sees it from our client, and what
// the client accepts of it.
func TestDraft13Wire(t *testing.T) {
	const (
		stream    http3.CapsuleType = 0x190b4d3b // WT_STREAM without FIN in -13
		streamFin http3.CapsuleType = 0x190b4d3c
	)
	peer := []http2.Setting{{ID: 0x8, Val: 1}, {ID: 0x2b61, Val: 1 << 20}, {ID: 0x2b62, Val: 1 << 20},
		{ID: 0x2b63, Val: 1 << 20}, {ID: 0x2b64, Val: 100}, {ID: 0x2b65, Val: 1}}
	s, raw := newRaw(t, true, Config{Dialect: Draft13}, peer)
	ctx := testCtx(t)

	// Our first bidirectional stream is 1 (odd). -13's single _BIDI
	// setting (0x2b63) is our send limit on it.

	str, err := s.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if str.StreamID() != 1 {
		t.Errorf("first client bidi stream %d, want 1", str.StreamID())
	}
	go func() {
		str.Write([]byte("hello"))
		str.Close()
	}()
	if ct, b, err := raw.next(); ct != stream || !bytes.Equal(b, valueOf(1, "hello")) {
		t.Errorf("capsule 0x%x %x, %v; want WT_STREAM without FIN", uint64(ct), b, err)
	}
	if ct, b, err := raw.next(); ct != streamFin || !bytes.Equal(b, valueOf(1)) {
		t.Errorf("capsule 0x%x %x, %v; want an empty WT_STREAM with FIN", uint64(ct), b, err)
	}

	// The peer's limit of one bidi stream is reached: WT_STREAMS_BLOCKED
	// for bidirectional streams is 0x190B4D44 in this dialect.
	if _, err := s.OpenStream(); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("OpenStream beyond the limit: %v", err)
	}
	if b := raw.expect(0x190b4d44); !bytes.Equal(b, valueOf(1)) {
		t.Errorf("WT_STREAMS_BLOCKED %x", b)
	}

	// A server-initiated unidirectional stream is 2 (even). Credit for it
	// (the package sends WT_MAX_STREAM_DATA for its own unidirectional
	// streams) is ignored; FIN comes on 0x190B4D3C.
	raw.send(capsule(stream, 2), capsule(capsuleMaxStreamData, 2, 16384), capsule(stream, 2, "one "), capsule(streamFin, 2, "way"))
	r, err := s.AcceptUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || string(got) != "one way" || r.StreamID() != 2 {
		t.Errorf("uni stream %d: %q, %v", r.StreamID(), got, err)
	}

	// Resets: the peer's without Reliable Size, and with it (-13 §6.2)
	// checked; ours without.
	raw.send(capsule(stream, 6, "abc"), capsule(capsuleResetStream, 6, 3))
	raw.send(capsule(stream, 10, "abc"), capsule(capsuleResetStream, 10, 4, 3))
	for _, want := range []uint32{3, 4} {
		r, err := s.AcceptUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(r); asStreamError(t, err).Code != want {
			t.Errorf("stream %d: %v, want reset %d", r.StreamID(), err, want)
		}
	}
	w, err := s.OpenUniStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w.StreamID() != 3 {
		t.Errorf("first client uni stream %d, want 3", w.StreamID())
	}
	w.Write([]byte("xy"))
	w.CancelWrite(5)
	if b := raw.expect(capsuleResetStream); !bytes.Equal(b, valueOf(3, 5)) {
		t.Errorf("our WT_RESET_STREAM %x, want stream 3, code 5, no Reliable Size", b)
	}

	// A Reliable Size that is there must be right.
	raw.send(capsule(stream, 14, "abc"), capsule(capsuleResetStream, 14, 1, 2))
	if se := asSessionError(t, waitEnd(t, s)); !errors.Is(se, ErrStreamState) {
		t.Errorf("wrong Reliable Size: %v", se)
	}
}

// What draft-15 wants where Draft13 differs: a Reliable Size in every
// WT_RESET_STREAM, and no credit for a stream only the peer sends on
// (RFC 9000 §19.10's rule).
func TestDraft15Wire(t *testing.T) {
	s, raw := newRaw(t, true, Config{}, ServerSettings(nil))
	w, err := s.OpenUniStreamSync(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("xy"))
	w.CancelWrite(5)
	if b := raw.expect(capsuleResetStream); !bytes.Equal(b, valueOf(2, 5, 2)) {
		t.Errorf("WT_RESET_STREAM %x, want stream 2, code 5, Reliable Size 2", b)
	}
	for name, caps := range map[string][][]byte{
		"reset without Reliable Size":     {capsule(capsuleStream, 3, "x"), capsule(capsuleResetStream, 3, 1)},
		"credit on the peer's uni stream": {capsule(capsuleStream, 3, "x"), capsule(capsuleMaxStreamData, 3, 1<<30)},
	} {
		t.Run(name, func(t *testing.T) {
			s, raw := newRaw(t, true, Config{}, ServerSettings(nil))
			raw.send(caps...)
			if se := asSessionError(t, waitEnd(t, s)); se.Remote || errors.Is(se, nil) {
				t.Errorf("cause %v, want a protocol violation", se)
			}
		})
	}
}

// FIN decided while data is still pending (Close while a Write waits for
// credit): draft-15 sends it on the last data capsule, Draft13 in an empty
// capsule of its own. Both dialects' codes: FIN is 0x190B4D3B in -15 and
// 0x190B4D3C in -13.
func TestFinAfterPendingData(t *testing.T) {
	for _, tt := range []struct {
		d    Dialect
		want []http3.CapsuleType // types of the capsules after "hel"
		vals [][]any
	}{
		{Draft15, []http3.CapsuleType{0x190b4d3b}, [][]any{{"lo"}}},
		{Draft13, []http3.CapsuleType{0x190b4d3b, 0x190b4d3c}, [][]any{{"lo"}, {}}},
	} {
		t.Run(tt.d.String(), func(t *testing.T) {
			cfg := Config{Dialect: tt.d}
			peer := ServerSettings(&Config{Dialect: tt.d})
			for i, st := range peer {
				if st.ID == 0x2b63 || st.ID == 0x2b66 {
					peer[i].Val = 3 // 3 bytes of credit on bidirectional streams
				}
			}
			s, raw := newRaw(t, true, cfg, peer)
			str, err := s.OpenStreamSync(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			id := str.StreamID()
			noFin := http3.CapsuleType(0x190b4d3c)
			if tt.d == Draft13 {
				noFin = 0x190b4d3b
			}
			wrote := make(chan error, 1)
			go func() {
				_, err := str.Write([]byte("hello"))
				wrote <- err
			}()
			if b := raw.expect(noFin); !bytes.Equal(b, valueOf(id, "hel")) {
				t.Fatalf("first capsule %x", b)
			}
			str.Close() // while Write waits for credit for "lo"
			raw.send(capsule(capsuleMaxStreamData, id, 5))
			for i, ct := range tt.want {
				if b := raw.expect(ct); !bytes.Equal(b, valueOf(append([]any{id}, tt.vals[i]...)...)) {
					t.Errorf("capsule 0x%x %x, want %q", uint64(ct), b, tt.vals[i])
				}
			}
			if err := <-wrote; err != nil {
				t.Errorf("Write: %v", err)
			}
		})
	}
}

func TestProtocolField(t *testing.T) {
	for _, tt := range []struct {
		d     Dialect
		lines []string
		want  string // "" for an error
	}{
		{Draft15, []string{`"echo-v1"`}, "echo-v1"},
		{Draft15, []string{`"a b";q=1`}, "a b"},
		{Draft15, []string{"echo-v1"}, ""},
		{Draft15, []string{"?1"}, ""},
		{Draft13, []string{"echo-v1"}, "echo-v1"},
		{Draft13, []string{" 2chat "}, "2chat"},
		{Draft13, []string{`"echo-v1"`}, "echo-v1"},
		{Draft13, []string{"a", "b"}, ""},
		{Draft13, []string{" "}, ""},
	} {
		got, err := tt.d.ParseProtocol(tt.lines)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("%v.ParseProtocol(%q) = %q, %v; want %q", tt.d, tt.lines, got, err, tt.want)
		}
	}
	for d, want := range map[Dialect]string{Draft15: `"echo-v1"`, Draft13: "echo-v1"} {
		if v, err := d.FormatProtocol("echo-v1"); v != want || err != nil {
			t.Errorf("%v.FormatProtocol = %q, %v; want %q", d, v, err, want)
		}
		if p, err := d.ParseProtocol([]string{want}); p != "echo-v1" || err != nil {
			t.Errorf("%v: %q parses as %q, %v", d, want, p, err)
		}
	}
}

// valueOf encodes a capsule value as capsule does.
func valueOf(vals ...any) []byte {
	b := capsule(0, vals...)
	_, l, _ := quicvarint.Parse(b[1:]) // type 0 is one byte; then the length
	return b[1+l:]
}
