package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
	"github.com/eyeballs/dialer/internal/durfmt"
)

const wsSynopsis = `Usage: eyeballs ws [flags] URL

Sends each line of stdin as a text message (with -b, each chunk read as a
binary message) and prints each message received on its own line (with -b,
as it is). URL is ws://, wss://, http:// or https://. With -json, stdout
carries only the race report and the messages go to stderr.
`

// runWS is "eyeballs ws URL": each stdin line is sent as a text message and
// each message received is printed on its own line.
func runWS(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("ws", wsSynopsis, stderr)
	var c common
	c.register(fs, dialer.DefaultTimeout, "bound on the whole dial")
	c.registerSubprotocol(fs)
	linger := fs.Duration("linger", 500*time.Millisecond, "after stdin ends, keep printing messages until none arrives for this long, then close")
	binary := fs.Bool("binary", false, "send binary messages: each chunk read from stdin, not each line; print messages received as they are (websocat -b)")
	alias(fs, "b", "binary")
	var ping secondsFlag
	fs.Var(&ping, "ping-interval", "send a ping every `INTERVAL` (\"30s\", or seconds as in websocat) and fail when no pong comes back before the next")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("want exactly one URL (ws://, wss://, http:// or https://)")
	}
	u, err := parseURL(args[0], "ws", "wss", "http", "https")
	if err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	defer c.routes.close()
	o := newOutput(c.json, stdout, stderr)
	p := newProgress(stderr, "dialing "+u.Host)
	defer p.stop()
	dialURL, opts, err := c.session(u, p, o)
	if err != nil {
		return err
	}
	d := dialer.New()
	defer d.CloseIdleConnections()
	p.start()
	conn, resp, err := d.DialWebSocket(ctx, dialURL, opts...)
	p.stop()
	if err != nil {
		if errors.Is(err, dialer.ErrRejected) && resp != nil {
			return fmt.Errorf("server answered %s: %w", resp.Status, err)
		}
		return err
	}
	defer conn.CloseNow()
	if c.verbose && resp != nil {
		printHeadPrefixed(stderr, resp, "< ")
	}
	fmt.Fprintf(stderr, "connected over HTTP/%d", resp.ProtoMajor)
	if p := conn.Subprotocol(); p != "" {
		fmt.Fprintf(stderr, ", subprotocol %q", p)
	}
	fmt.Fprintln(stderr)

	data := o.Data()
	readErr := make(chan error, 1)
	got := make(chan struct{}, 1)
	go func() {
		for {
			_, msg, err := conn.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			if !*binary {
				msg = append(msg, '\n')
			}
			data.Write(msg)
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}()
	msgs := make(chan []byte)
	go readMessages(ctx, stdin, *binary, msgs)
	typ := websocket.MessageText
	if *binary {
		typ = websocket.MessageBinary
	}
	pingErr := make(chan error, 1)
	if ping > 0 {
		done := make(chan struct{})
		defer close(done)
		go pinger(ctx, conn, time.Duration(ping), c.verbose, stderr, done, pingErr)
	}
	for {
		select {
		case msg, ok := <-msgs:
			if !ok {
				// stdin ended: print what is still coming, then close the
				// WebSocket cleanly.
				if err := lingerFor(*linger, got, readErr, pingErr); err != nil {
					conn.CloseNow() // a peer that does not answer pings would not answer a close either
					return err
				}
				conn.Close(websocket.StatusNormalClosure, "")
				return nil
			}
			if err := conn.Write(ctx, typ, msg); err != nil {
				return err
			}
		case err := <-readErr:
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				return nil
			}
			return err
		case err := <-pingErr:
			conn.CloseNow() // a peer that does not answer pings would not answer a close either
			return err
		case <-ctx.Done():
			conn.Close(websocket.StatusGoingAway, "interrupted")
			return nil
		}
	}
}

// readMessages sends what stdin holds on msgs, a line at a time (without
// its newline) or, in binary mode, a chunk at a time as read, and closes
// msgs at its end.
func readMessages(ctx context.Context, stdin io.Reader, binary bool, msgs chan<- []byte) {
	defer close(msgs)
	send := func(b []byte) bool {
		select {
		case msgs <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if binary {
		buf := make([]byte, 64<<10)
		for {
			n, err := stdin.Read(buf)
			if n > 0 && !send(bytes.Clone(buf[:n])) {
				return
			}
			if err != nil {
				return
			}
		}
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if !send(bytes.Clone(sc.Bytes())) {
			return
		}
	}
}

// pinger pings conn every interval until done is closed, and reports on
// errc a ping that got no pong within the interval.
func pinger(ctx context.Context, conn *websocket.Conn, interval time.Duration, verbose bool, stderr io.Writer, done <-chan struct{}, errc chan<- error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, interval)
		start := time.Now()
		err := conn.Ping(pctx)
		cancel()
		select {
		case <-done:
			return
		default:
		}
		if err != nil {
			if pctx.Err() != nil && ctx.Err() == nil {
				err = &timeoutError{"no pong", fmt.Errorf("a ping got no answer within -ping-interval %v", interval)}
			}
			errc <- err
			return
		}
		if verbose {
			fmt.Fprintf(stderr, "pong after %s\n", durfmt.Format(time.Since(start)))
		}
	}
}

// lingerFor waits until no message has arrived for d, or the connection
// ended, or a ping failed (which it returns).
func lingerFor(d time.Duration, got <-chan struct{}, readErr, pingErr <-chan error) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-got:
			t.Reset(d)
		case <-t.C:
			return nil
		case <-readErr:
			return nil
		case err := <-pingErr:
			return err
		}
	}
}

// secondsFlag is a duration given as Go writes it ("30s", "1m") or, as
// websocat takes it, in seconds ("30", "0.5").
type secondsFlag time.Duration

func (s *secondsFlag) String() string { return time.Duration(*s).String() }

func (s *secondsFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		f, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil {
			return fmt.Errorf("%q is neither a duration (30s) nor seconds (30)", v)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < 0 {
		return fmt.Errorf("%q is negative", v)
	}
	*s = secondsFlag(d)
	return nil
}
