package h2conn

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2/hpack"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx is a context that ends with the test or after d.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		client.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// pair starts our client and our server on a loopback TCP connection.
func pair(t testing.TB, ccfg, scfg Config) (client, server *Conn) {
	t.Helper()
	cnc, snc := tcpPair(t)
	type res struct {
		c   *Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := NewServer(testCtx(t, 5*time.Second), snc, scfg)
		ch <- res{s, err}
	}()
	client, err := NewClient(cnc, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		client.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// serve runs h on every stream the server accepts until it closes, and
// waits for the handlers when the test ends.
func serve(t testing.TB, srv *Conn, h func(*Stream)) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			s, err := srv.AcceptStream(context.Background())
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				h(s)
			}()
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
}

// echo answers 200 and sends back what it reads.
func echo(s *Stream) {
	defer s.Close()
	if err := s.WriteHeader(status(200), false); err != nil {
		return
	}
	if _, err := io.Copy(s, s); err != nil {
		return
	}
	s.CloseWrite()
}

func status(code int, extra ...string) []hpack.HeaderField {
	f := []hpack.HeaderField{{Name: ":status", Value: itoa(code)}}
	for i := 0; i+1 < len(extra); i += 2 {
		f = append(f, hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return f
}

func itoa(n int) string { return strconv.Itoa(n) }

// reqFields is a request header block.
func reqFields(method, path string, extra ...string) []hpack.HeaderField {
	f := []hpack.HeaderField{
		{Name: ":method", Value: method},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: path},
		{Name: ":authority", Value: "127.0.0.1"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		f = append(f, hpack.HeaderField{Name: extra[i], Value: extra[i+1]})
	}
	return f
}

func value(fields []hpack.HeaderField, name string) string {
	for _, f := range fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// slowReader reads r with pauses, to keep the windows full.
type slowReader struct {
	r     io.Reader
	every int
	n     int
}

func (s *slowReader) Read(p []byte) (int, error) {
	s.n++
	if s.every > 0 && s.n%s.every == 0 {
		time.Sleep(time.Millisecond)
	}
	return s.r.Read(p[:min(len(p), 8<<10)])
}

// readAllCheck reads r to EOF and compares with want.
func readAllCheck(r io.Reader, want []byte) error {
	got, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return errMismatch{len(got), len(want)}
	}
	return nil
}

type errMismatch struct{ got, want int }

func (e errMismatch) Error() string {
	return "data mismatch: got " + itoa(e.got) + " bytes, want " + itoa(e.want)
}
