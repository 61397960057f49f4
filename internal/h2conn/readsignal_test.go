package h2conn

import (
	"io"
	"sync"
	"testing"
	"time"
)

// TestReadWakeAllocs: a Read that waits for the peer's data and is woken
// by it allocates nothing (readSignal), as a WebSocket's reader waits for
// every message.
func TestReadWakeAllocs(t *testing.T) {
	if raceOn {
		t.Skip("the race detector allocates on its own")
	}
	client, server := pair(t, Config{}, Config{})
	cs, ss := streamPair(t, client, server)
	buf := make([]byte, 64)
	msg := make([]byte, 64)
	got := make(chan error, 1)
	read := func() {
		_, err := io.ReadFull(cs, buf)
		got <- err
	}
	// The reader waits; the server's write wakes it.
	n := testing.AllocsPerRun(200, func() {
		go read()
		time.Sleep(50 * time.Microsecond) // the reader gets to wait, mostly
		if _, err := ss.Write(msg); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	})
	// read is bound once: starting it allocates nothing, so what is
	// counted is the Read and its wait.
	if n >= 0.5 {
		t.Errorf("%.1f allocations per woken Read, want 0", n)
	}
}

// TestConcurrentReaders: several goroutines reading one stream at once
// all return, between them with every byte and then io.EOF: a wake-up
// that would reach one waiter only must reach them all.
func TestConcurrentReaders(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	cs, ss := streamPair(t, client, server)
	const readers = 4
	var (
		mu    sync.Mutex
		total int
		wg    sync.WaitGroup
	)
	for range readers {
		wg.Go(func() {
			buf := make([]byte, 3)
			for {
				n, err := cs.Read(buf)
				mu.Lock()
				total += n
				mu.Unlock()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // all four wait
	for range 10 {
		if _, err := ss.Write([]byte("0123456789")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	ss.CloseWrite()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a reader is still waiting after END_STREAM")
	}
	if total != 100 {
		t.Errorf("readers got %d bytes between them, want 100", total)
	}
}

// TestReadSignalFiresTwice: two readers waiting on one stream, woken by a
// broadcast, and a second wake-up (the next frame, a reset, a deadline)
// before either has run again: the second finds the channel closed and
// gone, and must not close it again.
func TestReadSignalFiresTwice(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	cs, ss := streamPair(t, client, server)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { io.Copy(io.Discard, cs) })
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		client.mu.Lock()
		n := cs.rsig.waiters
		if n == 2 {
			func() {
				defer client.mu.Unlock()
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("second wake-up: %v", r)
					}
				}()
				cs.rsig.fire() // broadcast
				cs.rsig.fire() // before either reader is done waiting
			}()
			break
		}
		client.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%d readers waiting, want 2", n)
		}
		time.Sleep(time.Millisecond)
	}
	ss.Write([]byte("data"))
	ss.CloseWrite()
	wg.Wait()
}
