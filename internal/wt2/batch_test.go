package wt2

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// writeSizes records the size of every Write on a connection.
type writeSizes struct {
	net.Conn
	mu    sync.Mutex
	sizes []int
}

func (w *writeSizes) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.sizes = append(w.sizes, len(p))
	w.mu.Unlock()
	return w.Conn.Write(p)
}

// The writer hands the CONNECT stream batches of at most writeBatch bytes,
// the SETTINGS_MAX_FRAME_SIZE both ends announce, so that a batch crosses
// in one HTTP/2 DATA frame; and a stream written in one go fills them.
func TestWriteBatchFitsFrame(t *testing.T) {
	cc, sc := tcpPair(t)
	rec := &writeSizes{Conn: cc}
	var cfg Config
	client := NewSession(rec, true, cfg, settingsMap(ServerSettings(&cfg)))
	server := NewSession(sc, false, cfg, settingsMap(ClientSettings(&cfg)))
	t.Cleanup(func() {
		client.CloseWithError(0, "")
		server.CloseWithError(0, "")
	})
	if v := settingsMap(ClientSettings(&cfg))[0x5]; v != writeBatch {
		t.Fatalf("SETTINGS_MAX_FRAME_SIZE %d, want %d", v, writeBatch)
	}
	ctx := testCtx(t)
	str, err := client.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	msg := pattern(1, 1<<20)
	go func() {
		str.Write(msg)
		str.Close()
	}()
	peer, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(peer)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %d bytes (%v), want the %d written", len(got), err, len(msg))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	full := 0
	for _, n := range rec.sizes {
		if n > writeBatch {
			t.Errorf("a write of %d bytes, more than one %d-byte frame", n, writeBatch)
		}
		if n > writeBatch-minChunk-maxCapsuleHeader {
			full++
		}
	}
	if full < len(msg)/writeBatch-2 {
		t.Errorf("%d full batches for %d bytes (writes %v)", full, len(msg), rec.sizes)
	}
}
