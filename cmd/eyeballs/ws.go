package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/coder/websocket"

	"github.com/eyeballs/dialer"
)

// runWS is "eyeballs ws URL": each stdin line is sent as a text message and
// each message received is printed on its own line.
func runWS(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("ws", "Usage: eyeballs ws [flags] URL\n\nSends each line of stdin as a text message and prints each message received.\nURL is ws://, wss://, http:// or https://.\n", stderr)
	var c common
	c.register(fs)
	c.registerSubprotocol(fs)
	linger := fs.Duration("linger", 500*time.Millisecond, "after stdin ends, keep printing messages until none arrives for this long, then close")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("want exactly one URL (ws://, wss://, http:// or https://)")
	}
	p := newProgress(stderr, "dialing "+hostOf(args[0]))
	defer p.stop()
	opts, err := c.sessionOptions(p)
	if err != nil {
		return err
	}
	d := dialer.New()
	defer d.CloseIdleConnections()
	p.start()
	conn, resp, err := d.DialWebSocket(ctx, args[0], opts...)
	p.stop()
	if err != nil {
		if errors.Is(err, dialer.ErrRejected) && resp != nil {
			return fmt.Errorf("server answered %s: %w", resp.Status, err)
		}
		return err
	}
	defer conn.CloseNow()
	fmt.Fprintf(stderr, "connected over HTTP/%d", resp.ProtoMajor)
	if p := conn.Subprotocol(); p != "" {
		fmt.Fprintf(stderr, ", subprotocol %q", p)
	}
	fmt.Fprintln(stderr)

	readErr := make(chan error, 1)
	got := make(chan struct{}, 1)
	go func() {
		for {
			_, msg, err := conn.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			fmt.Fprintf(stdout, "%s\n", msg)
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				// stdin ended: print what is still coming, then close the
				// WebSocket cleanly.
				lingerFor(*linger, got, readErr)
				conn.Close(websocket.StatusNormalClosure, "")
				return nil
			}
			if err := conn.Write(ctx, websocket.MessageText, []byte(line)); err != nil {
				return err
			}
		case err := <-readErr:
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				return nil
			}
			return err
		case <-ctx.Done():
			conn.Close(websocket.StatusGoingAway, "interrupted")
			return nil
		}
	}
}

// lingerFor waits until no message has arrived for d, or the connection
// ended.
func lingerFor(d time.Duration, got <-chan struct{}, readErr <-chan error) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-got:
			t.Reset(d)
		case <-t.C:
			return
		case <-readErr:
			return
		}
	}
}
