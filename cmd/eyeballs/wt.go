package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/eyeballs/dialer"
)

// runWT is "eyeballs wt URL": each stdin line goes out on one bidirectional
// stream (or, with -datagrams, as one datagram) and everything that comes
// back is printed.
func runWT(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	datagrams := fs.Bool("datagrams", false, "send each line as a datagram instead of on the stream")
	linger := fs.Duration("linger", 500*time.Millisecond, "after stdin ends, keep printing until nothing arrives for this long, then close")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: eyeballs wt [flags] https://URL\n\nOpens a WebTransport session, sends each line of stdin on one bidirectional stream\n(or as datagrams) and prints what comes back.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: want exactly one https:// URL", errUsage)
	}
	opts, err := c.options(stderr)
	if err != nil {
		return err
	}
	d := dialer.New()
	defer d.CloseIdleConnections()
	sess, resp, err := d.DialWebTransport(ctx, fs.Arg(0), opts...)
	if err != nil {
		if errors.Is(err, dialer.ErrRejected) && resp != nil {
			return fmt.Errorf("server answered %s: %w", resp.Status, err)
		}
		return err
	}
	defer sess.CloseWithError(0, "")
	fmt.Fprintf(stderr, "session open over HTTP/%d", sess.HTTPVersion())
	if p := sess.Protocol(); p != "" {
		fmt.Fprintf(stderr, ", protocol %q", p)
	}
	fmt.Fprintln(stderr)

	got := make(chan struct{}, 1)
	print := func(b []byte) {
		stdout.Write(b)
		select {
		case got <- struct{}{}:
		default:
		}
	}
	var str *dialer.Stream
	if *datagrams {
		go func() {
			for {
				b, err := sess.ReceiveDatagram(sess.Context())
				if err != nil {
					return
				}
				print(append(b, '\n'))
			}
		}()
	} else {
		if str, err = sess.OpenStreamSync(ctx); err != nil {
			return err
		}
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := str.Read(buf)
				print(buf[:n])
				if err != nil {
					return
				}
			}
		}()
	}
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := append(sc.Bytes(), '\n')
		if *datagrams {
			err = sess.SendDatagram(line[:len(line)-1])
		} else {
			_, err = str.Write(line)
		}
		if err != nil {
			return err
		}
	}
	if str != nil {
		str.Close()
	}
	t := time.NewTimer(*linger)
	defer t.Stop()
	for {
		select {
		case <-got:
			t.Reset(*linger)
		case <-t.C:
			return nil
		case <-sess.Context().Done():
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}
