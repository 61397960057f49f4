package wt2

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/quic-go/quic-go/quicvarint"
)

// A peer breaking the draft ends the session with a *SessionError wrapping
// the kind of error; the peer gets WT_CLOSE_SESSION naming it, then the end
// of the stream.
func TestPeerViolations(t *testing.T) {
	big := make([]byte, 1001)
	tests := []struct {
		name string
		cfg  Config
		caps [][]byte
		kind error
	}{
		{"stream not opened by us", Config{}, [][]byte{capsule(capsuleStream, 1, "x")}, ErrStreamState},
		{"data on our uni stream", Config{}, [][]byte{capsule(capsuleStream, 3, "x")}, ErrStreamState},
		{"bidi stream beyond limit", Config{MaxIncomingStreams: 3}, [][]byte{capsule(capsuleStream, 12, "x")}, ErrFlowControl},
		{"uni stream beyond limit", Config{}, [][]byte{capsule(capsuleStream, 2+4*100, "x")}, ErrFlowControl},
		{"stream data beyond window", Config{MaxStreamData: 1000}, [][]byte{capsule(capsuleStream, 0, big)}, ErrFlowControl},
		{"session data beyond window", Config{MaxData: 1000}, [][]byte{
			capsule(capsuleStream, 0, big[:600]), capsule(capsuleStream, 4, big[:401]),
		}, ErrFlowControl},
		{"data after FIN", Config{}, [][]byte{
			capsule(capsuleStreamFin, 0, "a"), capsule(capsuleStream, 0, "b"),
		}, ErrStreamState},
		{"reset after FIN", Config{}, [][]byte{
			capsule(capsuleStreamFin, 0, "a"), capsule(capsuleResetStream, 0, 1, 1),
		}, ErrStreamState},
		{"reset with wrong reliable size", Config{}, [][]byte{
			capsule(capsuleStream, 0, "abc"), capsule(capsuleResetStream, 0, 1, 2),
		}, ErrStreamState},
		{"reset code above 32 bits", Config{}, [][]byte{capsule(capsuleResetStream, 0, uint64(1)<<32, 0)}, ErrProtocol},
		{"second stop sending", Config{}, [][]byte{
			capsule(capsuleStream, 0, "a"), capsule(capsuleStopSending, 0, 1), capsule(capsuleStopSending, 0, 1),
		}, ErrStreamState},
		{"max stream data after stop sending", Config{}, [][]byte{
			capsule(capsuleStream, 0, "a"), capsule(capsuleStopSending, 0, 1), capsule(capsuleMaxStreamData, 0, 1<<30),
		}, ErrStreamState},
		{"stop sending on peer's uni stream", Config{}, [][]byte{
			capsule(capsuleStream, 2, "a"), capsule(capsuleStopSending, 2, 1),
		}, ErrStreamState},
		{"max stream data for a stream we never opened", Config{}, [][]byte{capsule(capsuleMaxStreamData, 1, 100)}, ErrStreamState},
		{"max data went down", Config{}, [][]byte{capsule(capsuleMaxData, 10)}, ErrFlowControl},
		{"max stream data went down", Config{}, [][]byte{
			capsule(capsuleStream, 0, "a"), capsule(capsuleMaxStreamData, 0, 5),
		}, ErrFlowControl},
		{"max streams above 2^60", Config{}, [][]byte{capsule(capsuleMaxStreamsUni, uint64(1)<<60+1)}, ErrFlowControl},
		{"oversized control capsule", Config{}, [][]byte{capsule(capsuleMaxData, make([]byte, 40))}, ErrProtocol},
		{"trailing bytes", Config{}, [][]byte{capsule(capsuleMaxData, 1<<30, "x")}, ErrProtocol},
		{"truncated control capsule", Config{}, [][]byte{capsule(capsuleMaxStreamData, 0)}, ErrProtocol},
		{"oversized stream capsule", Config{}, [][]byte{
			quicvarint.Append(quicvarint.Append(nil, uint64(capsuleStream)), 2<<20),
		}, ErrProtocol},
		{"stream capsule without ID", Config{}, [][]byte{capsule(capsuleStream)}, ErrProtocol},
		{"close message too long", Config{}, [][]byte{capsule(capsuleCloseSession, uint32(1), strings.Repeat("x", 1025))}, ErrProtocol},
		{"close message not UTF-8", Config{}, [][]byte{capsule(capsuleCloseSession, uint32(1), "\xff")}, ErrProtocol},
		{"close capsule too short", Config{}, [][]byte{capsule(capsuleCloseSession, "ab")}, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, raw := newRaw(t, false, tt.cfg, ClientSettings(nil))
			raw.send(tt.caps...)
			se := asSessionError(t, waitEnd(t, s))
			if !errors.Is(se, tt.kind) || se.Remote || se.Code != 0 {
				t.Errorf("cause = %+v (%v), want a local close wrapping %v", se, se, tt.kind)
			}
			b := raw.expect(capsuleCloseSession)
			code, msg := binary.BigEndian.Uint32(b), string(b[4:])
			name := strings.TrimPrefix(tt.kind.Error(), "wt2: ")
			if code != 0 || !strings.HasPrefix(msg, name+": ") {
				t.Errorf("WT_CLOSE_SESSION %d %q, want 0 and %s", code, msg, name)
			}
			if ct, _, err := raw.next(); err != io.EOF {
				t.Errorf("after WT_CLOSE_SESSION: capsule 0x%x, %v; want EOF", uint64(ct), err)
			}
		})
	}
}

// Random bytes from the peer end the session without a panic or a hang.
func TestGarbage(t *testing.T) {
	for seed := range uint64(20) {
		s, raw := newRaw(t, seed%2 == 0, Config{}, ClientSettings(nil))
		rng := rand.New(rand.NewPCG(seed, 1))
		b := make([]byte, 64<<10)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		go func() {
			raw.conn.Write(b)
			raw.conn.Close()
		}()
		waitEnd(t, s)
	}
}
