package h2conn

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// seedWriter builds well-formed frame sequences for the fuzz corpus.
type seedWriter struct {
	buf  bytes.Buffer
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
}

func newSeedWriter() *seedWriter {
	w := &seedWriter{}
	w.fr = http2.NewFramer(&w.buf, nil)
	w.fr.AllowIllegalWrites = true
	w.enc = hpack.NewEncoder(&w.hbuf)
	return w
}

func (w *seedWriter) block(fields ...string) []byte {
	w.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		w.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	return bytes.Clone(w.hbuf.Bytes())
}

func (w *seedWriter) headers(id uint32, end bool, fields ...string) *seedWriter {
	w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: w.block(fields...), EndStream: end, EndHeaders: true})
	return w
}

func fuzzSeeds() [][]byte {
	var seeds [][]byte
	add := func(build func(w *seedWriter)) {
		w := newSeedWriter()
		build(w)
		seeds = append(seeds, w.buf.Bytes())
	}
	add(func(w *seedWriter) {
		w.fr.WriteSettingsAck()
		w.headers(1, false, ":status", "200", "content-type", "text/plain")
		w.fr.WriteData(1, true, []byte("hello"))
	})
	add(func(w *seedWriter) {
		w.headers(1, false, ":status", "100")
		w.headers(1, false, ":status", "200")
		w.fr.WriteDataPadded(1, false, []byte("padded"), make([]byte, 30))
		w.headers(1, true, "x-trailer", "v")
	})
	add(func(w *seedWriter) {
		blk := w.block(":status", "200", "x-long", string(bytes.Repeat([]byte("ab"), 100)))
		w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:5]})
		w.fr.WriteContinuation(1, false, blk[5:50])
		w.fr.WriteContinuation(1, true, blk[50:])
		w.fr.WriteData(1, false, bytes.Repeat([]byte("d"), 2000))
		w.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	})
	add(func(w *seedWriter) {
		w.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1},
			http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20},
			http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0},
			http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 0},
			http2.Setting{ID: http2.SettingEnableConnectProtocol, Val: 1})
		w.fr.WriteWindowUpdate(0, 1000)
		w.fr.WriteWindowUpdate(1, 1000)
		w.fr.WritePing(false, [8]byte{1, 2, 3})
		w.fr.WritePing(true, [8]byte{1})
		w.fr.WritePriority(1, http2.PriorityParam{StreamDep: 3, Weight: 10})
		w.fr.WriteRawFrame(0x42, 0, 1, []byte("extension"))
	})
	add(func(w *seedWriter) {
		w.headers(1, false, ":status", "200")
		w.fr.WriteData(1, false, make([]byte, 1500))
		w.fr.WriteData(1, false, make([]byte, 1500))
		w.fr.WriteGoAway(1, http2.ErrCodeNo, []byte("draining"))
		w.fr.WriteData(1, true, []byte("end"))
	})
	add(func(w *seedWriter) {
		w.fr.WriteGoAway(0, http2.ErrCodeEnhanceYourCalm, nil)
	})
	add(func(w *seedWriter) {
		w.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: w.block(":method", "GET"), EndHeaders: true})
	})
	add(func(w *seedWriter) {
		w.headers(3, true, ":status", "200")
		w.headers(2, true, ":status", "200")
		w.fr.WriteData(5, false, []byte("idle"))
		w.fr.WriteRSTStream(7, http2.ErrCodeCancel)
	})
	add(func(w *seedWriter) {
		w.headers(1, false, ":status", "200")
		w.fr.WriteWindowUpdate(1, 1<<31-1)
		w.fr.WriteWindowUpdate(0, 1<<31-1)
		w.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	})
	return seeds
}

// FuzzClientFrames feeds arbitrary frames, after a valid server SETTINGS,
// to a client with a stream open. The client must not panic, must stay
// responsive, must end when the peer goes away, and must leak nothing.
func FuzzClientFrames(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	f.Fuzz(fuzzClient)
}

func fuzzClient(t *testing.T, data []byte) {
	{
		ignore := goleak.IgnoreCurrent()
		defer goleak.VerifyNone(t, ignore)

		cnc, snc := net.Pipe()
		defer snc.Close()
		drained := make(chan struct{})
		go func() {
			io.Copy(io.Discard, snc)
			close(drained)
		}()
		client, err := NewClient(cnc, Config{StreamWindow: 1024, ConnWindow: 4096, MaxHeaderListSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := client.OpenStream(ctx, reqFields("POST", "/"), false)
		if err != nil {
			t.Fatal(err)
		}
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			if _, err := s.Header(ctx); err == nil {
				io.Copy(io.Discard, s)
			}
		}()
		go s.Write([]byte("request body")) // may block on a zero window: Close ends it

		var pre bytes.Buffer
		http2.NewFramer(&pre, nil).WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 10})
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			if _, err := snc.Write(append(pre.Bytes(), data...)); err != nil {
				return
			}
		}()
		select {
		case <-wrote:
		case <-time.After(5 * time.Second):
			t.Fatal("client stopped reading without closing")
		}

		// Still responsive: these return promptly whatever state it is in.
		client.State()
		client.CanTakeNewRequest()
		short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
		if s2, err := client.OpenStream(short, reqFields("GET", "/"), true); err == nil {
			s2.Close()
		}
		cancelShort()

		snc.Close()
		select {
		case <-client.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("client did not end after the peer closed")
		}
		if client.Err() == nil {
			t.Fatal("ended without an error")
		}
		select {
		case <-readerDone:
		case <-time.After(5 * time.Second):
			t.Fatal("stream reader hung")
		}
		client.Close()
		<-drained
	}
}
