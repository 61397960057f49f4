package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/eyeballs/dialer"
)

const wtSynopsis = `Usage: eyeballs wt [flags] https://URL

Opens a WebTransport session, sends each line of stdin on one bidirectional
stream (or as datagrams) and prints what comes back. With -json, stdout
carries only the race report and what comes back goes to stderr.
`

// runWT is "eyeballs wt URL": each stdin line goes out on one bidirectional
// stream (or, with -datagrams, as one datagram) and everything that comes
// back is printed.
func runWT(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("wt", wtSynopsis, stderr)
	var c common
	c.register(fs, dialer.DefaultTimeout, "bound on the whole dial")
	c.registerSubprotocol(fs)
	datagrams := fs.Bool("datagrams", false, "send each line as a datagram instead of on the stream")
	linger := fs.Duration("linger", 500*time.Millisecond, "after stdin ends, keep printing until nothing arrives for this long, then close")
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("want exactly one https:// URL")
	}
	u, err := parseURL(args[0], "https")
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
	sess, resp, err := d.DialWebTransport(ctx, dialURL, opts...)
	p.stop()
	if err != nil {
		if errors.Is(err, dialer.ErrRejected) && resp != nil {
			return fmt.Errorf("server answered %s: %w", resp.Status, err)
		}
		return err
	}
	defer sess.CloseWithError(0, "")
	if c.verbose && resp != nil {
		printHeadPrefixed(stderr, resp, "< ")
	}
	fmt.Fprintf(stderr, "session open over HTTP/%d", sess.HTTPVersion())
	if p := sess.Protocol(); p != "" {
		fmt.Fprintf(stderr, ", protocol %q", p)
	}
	fmt.Fprintln(stderr)

	data := o.Data()
	got := make(chan struct{}, 1)
	print := func(b []byte) {
		data.Write(b)
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
