package h2conn

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// A stream with a data handler hands it what was buffered, then every DATA
// payload in order, returns the window at once (the peer sends far more
// than one window without any Read), and Read reports only the end: io.EOF
// after END_STREAM, the error after RST_STREAM.
func TestDataHandler(t *testing.T) {
	client, server := pair(t, Config{StreamWindow: 64 << 10, ConnWindow: 64 << 10}, Config{})
	cs, ss := streamPair(t, client, server)
	if _, err := ss.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	cs.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 1)
	if _, err := io.ReadFull(cs, b); err != nil || b[0] != 'f' {
		t.Fatalf("Read before the handler: %q, %v", b, err)
	}
	var mu sync.Mutex
	var got bytes.Buffer
	cs.SetDataHandler(func(p []byte) {
		mu.Lock()
		got.Write(p)
		mu.Unlock()
	})
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB: 16 windows
	go func() {
		ss.Write(body)
		ss.CloseWrite()
	}()
	if n, err := cs.Read(b); n != 0 || err != io.EOF {
		t.Fatalf("Read with a handler = %d, %v; want 0, io.EOF", n, err)
	}
	mu.Lock()
	want := append([]byte("irst"), body...)
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("handler got %d bytes, want the %d sent", got.Len(), len(want))
	}
	mu.Unlock()

	cs, ss = streamPair(t, client, server)
	cs.SetDataHandler(func([]byte) {})
	cs.SetReadDeadline(time.Now().Add(10 * time.Second))
	ss.Reset(http2.ErrCodeCancel)
	var se *StreamError
	if _, err := cs.Read(b); !errors.As(err, &se) || se.Code != http2.ErrCodeCancel {
		t.Fatalf("Read after RST_STREAM: %v", err)
	}
}
