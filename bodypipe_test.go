package dialer

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

// TestBodyPipe checks the request body of extended CONNECTs sent through
// RoundTrip: writes return without a reader up to bodyPipeSize bytes (an
// io.Pipe blocks on the first), one Read takes the whole batch in order, a
// full pipe blocks the writer until the reader takes some, closeWrite ends
// the body after what is buffered, and the reader's Close fails a waiting
// writer.
func TestBodyPipe(t *testing.T) {
	p := newBodyPipe()
	var want []byte
	for i := range bodyPipeSize / 4096 {
		b := bytes.Repeat([]byte{byte(i)}, 4096)
		want = append(want, b...)
		done := make(chan error, 1)
		go func() { _, err := p.Write(b); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("write %d waited for a reader", i)
		}
	}
	// Full: the next write waits for the reader.
	done := make(chan error, 1)
	go func() { _, err := p.Write([]byte("tail")); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("write to a full pipe returned (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	got := make([]byte, 2*bodyPipeSize)
	n, err := p.Read(got)
	if err != nil || !bytes.Equal(got[:n], want) {
		t.Fatalf("Read = %d bytes, %v; want the %d bytes written, in order", n, err, len(want))
	}
	if err := <-done; err != nil {
		t.Fatalf("write after the reader made room: %v", err)
	}
	p.closeWrite()
	if _, err := p.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Write after closeWrite: %v, want io.ErrClosedPipe", err)
	}
	rest, err := io.ReadAll(p)
	if err != nil || string(rest) != "tail" {
		t.Errorf("after closeWrite: read %q, %v; want the buffered \"tail\", then EOF", rest, err)
	}

	// The reader (the HTTP client) gives up: a waiting writer fails.
	p = newBodyPipe()
	go func() { _, err := p.Write(make([]byte, bodyPipeSize+1)); done <- err }()
	time.Sleep(20 * time.Millisecond)
	p.Close()
	select {
	case err := <-done:
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("waiting Write after the reader's Close: %v, want io.ErrClosedPipe", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waiting Write not released by the reader's Close")
	}
	if _, err := p.Read(got); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Read after Close: %v", err)
	}
}
