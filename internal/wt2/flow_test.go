package wt2

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/quicvarint"
	"golang.org/x/net/http2"
)

// Small windows make large transfers block on flow control often.
var smallWindows = Config{MaxData: 1 << 20, MaxStreamData: 256 << 10}

// slowRead reads want bytes from r in small pieces, pausing now and then,
// and checks them against pattern(seed).
func slowRead(r io.Reader, seed, want int) error {
	expect := pattern(seed, want)
	buf := make([]byte, 4<<10)
	got := 0
	for got < want {
		n, err := r.Read(buf)
		if !bytes.Equal(buf[:n], expect[got:got+n]) {
			return fmt.Errorf("data differs at offset %d", got)
		}
		got += n
		if got%(128<<10) < n {
			time.Sleep(2 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("read %d of %d bytes: %w", got, want, err)
		}
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		return fmt.Errorf("after %d bytes: %d, %v; want EOF", want, n, err)
	}
	return nil
}

// exchange writes pattern(wseed) on str and closes it while reading
// pattern(rseed) slowly.
func exchange(str *Stream, wseed, rseed, size int) error {
	errc := make(chan error, 1)
	go func() {
		_, err := str.Write(pattern(wseed, size))
		if err == nil {
			err = str.Close()
		}
		errc <- err
	}()
	rerr := slowRead(&str.ReceiveStream, rseed, size)
	return errors.Join(rerr, <-errc)
}

func checkBuffering(t *testing.T, cfg Config, ss ...*Session) {
	t.Helper()
	for _, s := range ss {
		session, stream := s.bufferedHighWater()
		if session > uint64(cfg.MaxData) || stream > uint64(cfg.MaxStreamData) {
			t.Errorf("buffered up to %d bytes (window %d), %d on a stream (window %d)",
				session, cfg.MaxData, stream, cfg.MaxStreamData)
		}
		if session == 0 {
			t.Error("nothing was buffered")
		}
	}
}

func TestLargeTransferOneStream(t *testing.T) {
	client, server := newPair(t, smallWindows, smallWindows)
	ctx := testCtx(t)
	const size = 10 << 20
	str, err := client.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := exchange(str, 1, 2, size); err != nil {
			t.Errorf("client: %v", err)
		}
	})
	peer, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := exchange(peer, 2, 1, size); err != nil {
		t.Errorf("server: %v", err)
	}
	wg.Wait()
	checkBuffering(t, smallWindows, client, server)
}

func TestLargeTransferSixteenStreams(t *testing.T) {
	client, server := newPair(t, smallWindows, smallWindows)
	ctx := testCtx(t)
	const streams, size = 16, 10 << 20 / 16
	var wg sync.WaitGroup
	for i := range streams {
		str, err := client.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := exchange(str, i, 100+i, size); err != nil {
				t.Errorf("client stream %d: %v", i, err)
			}
		})
	}
	for range streams {
		peer, err := server.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := int(peer.StreamID() >> 2)
		wg.Go(func() {
			if err := exchange(peer, 100+i, i, size); err != nil {
				t.Errorf("server stream %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	checkBuffering(t, smallWindows, client, server)
}

// OpenStreamSync waits for WT_MAX_STREAMS, which comes once the peer has
// finished one of its streams.
func TestOpenStreamSyncWaitsForCredit(t *testing.T) {
	client, server := newPair(t, Config{}, Config{MaxIncomingStreams: 2})
	ctx := testCtx(t)
	first, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.OpenStream(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.OpenStream(); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("third OpenStream: %v", err)
	}
	opened := make(chan *Stream, 1)
	go func() {
		str, err := client.OpenStreamSync(ctx)
		if err != nil {
			t.Error(err)
		}
		opened <- str
	}()
	select {
	case <-opened:
		t.Fatal("OpenStreamSync did not wait")
	case <-time.After(100 * time.Millisecond):
	}
	first.Write([]byte("one"))
	first.Close()
	peer, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(peer); string(b) != "one" || err != nil {
		t.Fatalf("read %q, %v", b, err)
	}
	select {
	case <-opened:
		t.Fatal("OpenStreamSync returned before the peer finished a stream")
	case <-time.After(50 * time.Millisecond):
	}
	peer.Close()
	select {
	case str := <-opened:
		if str.StreamID() != 8 {
			t.Errorf("opened stream %d, want 8", str.StreamID())
		}
	case <-time.After(testTimeout):
		t.Fatal("OpenStreamSync did not resume")
	}
}

// rawSettings is a peer's SETTINGS with the given initial limits.
func rawSettings(maxData, streamData, streams uint32) []http2.Setting {
	return []http2.Setting{
		{ID: SettingWTInitialMaxData, Val: maxData},
		{ID: SettingWTInitialMaxStreamDataUni, Val: streamData},
		{ID: SettingWTInitialMaxStreamDataBidiLocal, Val: streamData},
		{ID: SettingWTInitialMaxStreamDataBidiRemote, Val: streamData},
		{ID: SettingWTInitialMaxStreamsUni, Val: streams},
		{ID: SettingWTInitialMaxStreamsBidi, Val: streams},
	}
}

func readVarints(t *testing.T, b []byte, n int) []uint64 {
	t.Helper()
	var vals []uint64
	for range n {
		v, l, err := quicvarint.Parse(b)
		if err != nil {
			t.Fatalf("capsule value %x: %v", b, err)
		}
		vals = append(vals, v)
		b = b[l:]
	}
	if len(b) != 0 {
		t.Fatalf("%d trailing bytes", len(b))
	}
	return vals
}

// With no credit from the peer, the session sends the *_BLOCKED capsules
// and resumes on WT_MAX_STREAMS, WT_MAX_DATA and WT_MAX_STREAM_DATA.
func TestBlockedCapsulesAndCredit(t *testing.T) {
	s, raw := newRaw(t, true, Config{}, rawSettings(10, 20, 0))
	ctx := testCtx(t)
	opened := make(chan *Stream, 1)
	go func() {
		str, _ := s.OpenStreamSync(ctx)
		opened <- str
	}()
	if v := readVarints(t, raw.expect(capsuleStreamsBlockedBidi), 1); v[0] != 0 {
		t.Errorf("WT_STREAMS_BLOCKED at %d, want 0", v[0])
	}
	raw.send(capsule(capsuleMaxStreamsBidi, 1))
	str := <-opened
	if str == nil || str.StreamID() != 0 {
		t.Fatalf("opened %v", str)
	}
	msg := pattern(0, 50)
	go func() {
		str.Write(msg)
		str.Close()
	}()
	if b := raw.expect(capsuleStream); !bytes.Equal(b, append([]byte{0}, msg[:10]...)) {
		t.Errorf("first chunk %x", b)
	}
	if v := readVarints(t, raw.expect(capsuleDataBlocked), 1); v[0] != 10 {
		t.Errorf("WT_DATA_BLOCKED at %d, want 10", v[0])
	}
	raw.send(capsule(capsuleMaxData, 1000))
	if b := raw.expect(capsuleStream); !bytes.Equal(b, append([]byte{0}, msg[10:20]...)) {
		t.Errorf("second chunk %x", b)
	}
	if v := readVarints(t, raw.expect(capsuleStreamDataBlocked), 2); v[0] != 0 || v[1] != 20 {
		t.Errorf("WT_STREAM_DATA_BLOCKED %v, want [0 20]", v)
	}
	raw.send(capsule(capsuleMaxStreamData, 0, 1000))
	// Write returns once its data is taken, so Close comes after the last
	// chunk: FIN in a capsule of its own.
	if b := raw.expect(capsuleStream); !bytes.Equal(b, append([]byte{0}, msg[20:]...)) {
		t.Errorf("last chunk %x", b)
	}
	if b := raw.expect(capsuleStreamFin); !bytes.Equal(b, []byte{0}) {
		t.Errorf("FIN capsule %x", b)
	}
}

// The session grants credit as the application reads: WT_MAX_STREAM_DATA,
// WT_MAX_DATA and, as streams finish, WT_MAX_STREAMS.
func TestCreditGranted(t *testing.T) {
	cfg := Config{MaxData: 4000, MaxStreamData: 1000, MaxIncomingStreams: 2}
	s, raw := newRaw(t, false, cfg, ClientSettings(nil))
	ctx := testCtx(t)

	raw.send(capsule(capsuleStream, 0, pattern(0, 600)))
	str, err := s.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(str, make([]byte, 600)); err != nil {
		t.Fatal(err)
	}
	if v := readVarints(t, raw.expect(capsuleMaxStreamData), 2); v[0] != 0 || v[1] != 1600 {
		t.Errorf("WT_MAX_STREAM_DATA %v, want [0 1600]", v)
	}
	raw.send(capsule(capsuleStreamFin, 0, pattern(1, 900)), capsule(capsuleStreamFin, 4, pattern(2, 900)))
	if _, err := io.ReadAll(str); err != nil {
		t.Fatal(err)
	}
	str4, err := s.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(str4, make([]byte, 900)); err != nil {
		t.Fatal(err)
	}
	str.Close()
	got := raw.collect(capsuleMaxData, capsuleMaxStreamsBidi, capsuleStreamFin)
	if v := readVarints(t, got[capsuleMaxData], 1); v[0] != 2400+4000 {
		t.Errorf("WT_MAX_DATA %v, want %d", v, 2400+4000)
	}
	if v := readVarints(t, got[capsuleMaxStreamsBidi], 1); v[0] != 3 {
		t.Errorf("WT_MAX_STREAMS %v, want 3", v)
	}
	if b := got[capsuleStreamFin]; !bytes.Equal(b, []byte{0}) {
		t.Errorf("FIN capsule %x", b)
	}
}

func TestUnknownCapsulesSkipped(t *testing.T) {
	s, raw := newRaw(t, false, Config{MaxDatagramSize: 100}, ClientSettings(nil))
	ctx := testCtx(t)
	raw.send(
		capsule(capsulePadding, make([]byte, 100)),
		capsule(0x1234, pattern(0, 5000)),
		capsule(capsuleDatagram, make([]byte, 101)), // too large: dropped
		capsule(capsuleDatagram, "hi"),
	)
	b, err := s.ReceiveDatagram(ctx)
	if err != nil || string(b) != "hi" {
		t.Fatalf("datagram %q, %v", b, err)
	}
}

// A peer's finished streams return credit only once accepted, so streams
// the application does not accept cannot pile up.
func TestCreditWaitsForAccept(t *testing.T) {
	s, raw := newRaw(t, false, Config{MaxIncomingUniStreams: 2}, ClientSettings(nil))
	ctx := testCtx(t)
	raw.send(capsule(capsuleStreamFin, 2), capsule(capsuleStreamFin, 6))
	waitForgotten(t, s, 6)
	s.mu.Lock()
	limit := s.inUni.limit
	s.mu.Unlock()
	if limit != 2 {
		t.Fatalf("limit %d before any accept, want 2", limit)
	}
	if _, err := s.AcceptUniStream(ctx); err != nil {
		t.Fatal(err)
	}
	if v := readVarints(t, raw.expect(capsuleMaxStreamsUni), 1); v[0] != 3 {
		t.Errorf("WT_MAX_STREAMS_UNI %v, want 3", v)
	}
	raw.send(capsule(capsuleStreamFin, 10), capsule(capsuleStreamFin, 14))
	if se := asSessionError(t, waitEnd(t, s)); !errors.Is(se, ErrFlowControl) {
		t.Errorf("cause %v, want a flow control error", se)
	}
}

// Received data held for the application costs about its own size in
// memory, whatever the size of the peer's WT_STREAM capsules: tiny ones
// are packed together, a large one is not held in a larger buffer.
func TestTinyCapsulesMemoryBounded(t *testing.T) {
	s, raw := newRaw(t, false, Config{MaxStreamData: 4 << 20}, ClientSettings(nil))
	ctx := testCtx(t)
	var want, wire []byte
	add := func(b []byte) {
		want = append(want, b...)
		wire = append(wire, capsule(capsuleStream, 0, b)...)
	}
	for i := range 20000 {
		add([]byte{byte(i)})
		if i%5000 == 0 {
			add(pattern(i, 3000))
		}
	}
	add(pattern(1, 1<<20-8))
	add([]byte("end"))
	raw.send(wire)

	str, err := s.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(testTimeout); ; {
		s.mu.Lock()
		st := str.ReceiveStream.st
		if st.recvOff == uint64(len(want)) {
			held := 0
			for range st.buf {
				held += recvChunk + 32 // the chunk and its rchunk
			}
			s.mu.Unlock()
			if limit := len(want) + len(want)/8 + 8<<10; held > limit {
				t.Errorf("%d bytes buffered in %d slices hold %d bytes (limit %d)", len(want), len(st.buf), held, limit)
			}
			break
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("data did not arrive")
		}
		time.Sleep(time.Millisecond)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(str, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back: %v, equal %v", err, bytes.Equal(got, want))
	}
}
