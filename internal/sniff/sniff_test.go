package sniff

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/http2"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// frames returns a server preface as x/net's Framer writes it: SETTINGS,
// then a WINDOW_UPDATE.
func frames(t testing.TB, settings ...http2.Setting) []byte {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	if err := fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteWindowUpdate(0, 1<<20); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// serve writes b to one end of a pipe in chunks of size n and returns the
// sniffing end (capping SETTINGS_MAX_FRAME_SIZE at 16 KiB), reading
// everything through it in the background.
func serve(t *testing.T, b []byte, n int) (*Conn, <-chan []byte) {
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close(); server.Close() })
	go func() {
		for len(b) > 0 {
			k := min(n, len(b))
			if _, err := server.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
		}
		server.Close()
	}()
	c := New(client, 16384)
	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(c)
		got <- all
	}()
	return c, got
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestSettings: the first SETTINGS frame is parsed whatever the read
// sizes, and every byte passes through unchanged.
func TestSettings(t *testing.T) {
	in := frames(t, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100}, http2.Setting{ID: SettingEnableConnectProtocol, Val: 1})
	for _, n := range []int{1, 2, 5, 9, 10, 1024} {
		c, got := serve(t, in, n)
		s, err := c.Settings(ctx(t))
		if err != nil {
			t.Fatalf("chunks of %d: %v", n, err)
		}
		if s[SettingEnableConnectProtocol] != 1 || s[uint16(http2.SettingMaxConcurrentStreams)] != 100 || len(s) != 2 {
			t.Errorf("chunks of %d: settings %v", n, s)
		}
		if out := <-got; !bytes.Equal(out, in) {
			t.Errorf("chunks of %d: bytes changed on the way", n)
		}
	}
}

// TestCapFrameSize: a SETTINGS_MAX_FRAME_SIZE above the cap reaches the
// client as the cap, whatever the read sizes, while Settings reports what
// the server sent and every other byte passes unchanged; one below the cap
// is left alone.
func TestCapFrameSize(t *testing.T) {
	in := frames(t, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20}, http2.Setting{ID: SettingEnableConnectProtocol, Val: 1})
	want := frames(t, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384}, http2.Setting{ID: SettingEnableConnectProtocol, Val: 1})
	for _, n := range []int{1, 7, 9, 16, 1024} {
		c, got := serve(t, in, n)
		s, err := c.Settings(ctx(t))
		if err != nil {
			t.Fatalf("chunks of %d: %v", n, err)
		}
		if s[SettingMaxFrameSize] != 1<<20 || s[SettingEnableConnectProtocol] != 1 {
			t.Errorf("chunks of %d: settings %v, want the server's", n, s)
		}
		if out := <-got; !bytes.Equal(out, want) {
			t.Errorf("chunks of %d: client read\n%x, want\n%x", n, out, want)
		}
	}
	small := frames(t, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384})
	_, got := serve(t, small, 5)
	if out := <-got; !bytes.Equal(out, small) {
		t.Errorf("a frame size at the cap changed on the way")
	}
}

// TestEmptySettings: a SETTINGS frame without values is valid and lacks
// extended CONNECT.
func TestEmptySettings(t *testing.T) {
	c, got := serve(t, frames(t), 3)
	s, err := c.Settings(ctx(t))
	if err != nil || len(s) != 0 {
		t.Fatalf("settings %v, err %v", s, err)
	}
	<-got
}

// TestBadPreface: frames other than a fresh SETTINGS frame are errors.
func TestBadPreface(t *testing.T) {
	var ping, ack bytes.Buffer
	http2.NewFramer(&ping, nil).WritePing(false, [8]byte{})
	http2.NewFramer(&ack, nil).WriteSettingsAck()
	huge := []byte{0x01, 0x00, 0x02, 0x4, 0, 0, 0, 0, 0} // 65538 bytes
	odd := []byte{0, 0, 5, 0x4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5}
	stream := []byte{0, 0, 0, 0x4, 0, 0, 0, 0, 1}
	for name, in := range map[string][]byte{"ping": ping.Bytes(), "ack": ack.Bytes(), "huge": huge, "odd length": odd, "stream": stream} {
		c, got := serve(t, in, 4)
		if _, err := c.Settings(ctx(t)); !errors.Is(err, ErrNotSettings) {
			t.Errorf("%s: want ErrNotSettings, got %v", name, err)
		}
		<-got
	}
}

// TestEndsEarly: a connection that ends inside the first frame, or is
// closed by us, fails the wait instead of blocking.
func TestEndsEarly(t *testing.T) {
	in := frames(t, http2.Setting{ID: SettingEnableConnectProtocol, Val: 1})
	c, got := serve(t, in[:12], 4)
	if _, err := c.Settings(ctx(t)); err == nil || errors.Is(err, ErrNotSettings) {
		t.Errorf("truncated: want an EOF error, got %v", err)
	}
	<-got

	client, server := net.Pipe()
	defer server.Close()
	c = New(client, 0)
	c.Close()
	if _, err := c.Settings(ctx(t)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("closed: want net.ErrClosed, got %v", err)
	}
}

// TestContext: Settings honours its context.
func TestContext(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	defer client.Close()
	c := New(client, 0)
	cx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Settings(cx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("want DeadlineExceeded, got %v", err)
	}
}

// FuzzParse: Parse never panics and accepts only well-formed frames.
func FuzzParse(f *testing.F) {
	f.Add(frames(f, http2.Setting{ID: SettingEnableConnectProtocol, Val: 1}))
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 6, 4, 1, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err == nil && (len(b) < 9 || len(s) > (len(b)-9)/6) {
			t.Fatalf("accepted %x as %v", b, s)
		}
	})
}
