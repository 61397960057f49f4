package wt2

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"
	"golang.org/x/net/http2"
)

// testTimeout bounds every wait in the tests.
const testTimeout = 20 * time.Second

func settingsMap(ss []http2.Setting) map[http2.SettingID]uint32 {
	m := make(map[http2.SettingID]uint32, len(ss))
	for _, s := range ss {
		m[s.ID] = s.Val
	}
	return m
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		client.Close()
		t.Fatal("accept failed")
	}
	return client, server
}

// newPair runs a client and a server Session on the two ends of a loopback
// TCP connection; both are closed when the test ends.
func newPair(t testing.TB, ccfg, scfg Config) (client, server *Session) {
	t.Helper()
	cc, sc := tcpPair(t)
	client = NewSession(wrapPush(cc), true, ccfg, settingsMap(ServerSettings(&scfg)))
	server = NewSession(wrapPush(sc), false, scfg, settingsMap(ClientSettings(&ccfg)))
	t.Cleanup(func() {
		client.CloseWithError(0, "")
		server.CloseWithError(0, "")
	})
	return client, server
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// capsule encodes one capsule whose value is vals in order: uint64 and int
// as varints, []byte and string as they are.
func capsule(ct http3.CapsuleType, vals ...any) []byte {
	var v []byte
	for _, x := range vals {
		switch x := x.(type) {
		case uint64:
			v = quicvarint.Append(v, x)
		case int:
			v = quicvarint.Append(v, uint64(x))
		case uint32: // WT_CLOSE_SESSION code
			v = binary.BigEndian.AppendUint32(v, x)
		case []byte:
			v = append(v, x...)
		case string:
			v = append(v, x...)
		default:
			panic("capsule: bad value")
		}
	}
	var b bytes.Buffer
	http3.WriteCapsule(&b, ct, v)
	return b.Bytes()
}

// rawPeer is the far end of a Session driven by hand: the test writes
// capsules and reads what the Session sends.
type rawPeer struct {
	t    testing.TB
	conn net.Conn
	p    *http3.CapsuleParser
}

// newRaw runs a Session in the given role with cfg against a raw peer whose
// SETTINGS are peer.
func newRaw(t testing.TB, client bool, cfg Config, peer []http2.Setting) (*Session, *rawPeer) {
	t.Helper()
	a, b := tcpPair(t)
	if cfg.CloseTimeout == 0 {
		cfg.CloseTimeout = 200 * time.Millisecond
	}
	s := NewSession(wrapPush(a), client, cfg, settingsMap(peer))
	r := &rawPeer{t: t, conn: b, p: http3.NewCapsuleParser(bufio.NewReader(b))}
	t.Cleanup(func() {
		b.Close()
		s.CloseWithError(0, "")
	})
	return s, r
}

func (r *rawPeer) send(caps ...[]byte) {
	r.t.Helper()
	for _, c := range caps {
		if _, err := r.conn.Write(c); err != nil {
			r.t.Fatalf("raw write: %v", err)
		}
	}
}

// next returns the next capsule the Session sent.
func (r *rawPeer) next() (http3.CapsuleType, []byte, error) {
	r.conn.SetReadDeadline(time.Now().Add(testTimeout))
	ct, cr, err := r.p.Next()
	if err != nil {
		return 0, nil, err
	}
	b, err := io.ReadAll(cr)
	return ct, b, err
}

// expect reads capsules until one of type ct, skipping others.
func (r *rawPeer) expect(ct http3.CapsuleType) []byte {
	r.t.Helper()
	for {
		got, b, err := r.next()
		if err != nil {
			r.t.Fatalf("waiting for capsule 0x%x: %v", uint64(ct), err)
		}
		if got == ct {
			return b
		}
	}
}

// collect reads capsules until it has seen each of types once and returns
// their values.
func (r *rawPeer) collect(types ...http3.CapsuleType) map[http3.CapsuleType][]byte {
	r.t.Helper()
	got := make(map[http3.CapsuleType][]byte)
	for len(got) < len(types) {
		ct, b, err := r.next()
		if err != nil {
			r.t.Fatalf("waiting for capsules %x: %v", types, err)
		}
		for _, want := range types {
			if ct == want {
				if _, dup := got[ct]; !dup {
					got[ct] = b
				}
			}
		}
	}
	return got
}

// waitEnd waits for s to end and returns its cause.
func waitEnd(t testing.TB, s *Session) error {
	t.Helper()
	select {
	case <-s.Context().Done():
		return context.Cause(s.Context())
	case <-time.After(testTimeout):
		t.Fatal("session did not end")
		return nil
	}
}

func asSessionError(t testing.TB, err error) *SessionError {
	t.Helper()
	var se *SessionError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *SessionError", err, err)
	}
	return se
}

func asStreamError(t testing.TB, err error) *StreamError {
	t.Helper()
	var se *StreamError
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *StreamError", err, err)
	}
	return se
}

// pattern returns n bytes that depend on seed and position.
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed*13 + i>>10)
	}
	return b
}

// within fails the test unless f returns within d.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
}
