package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestProgress: on a terminal the line appears after the delay, is erased
// before other output and when the dial ends, and no goroutine is left.
func TestProgress(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, label: "dialing x.test", tty: true, delay: 20 * time.Millisecond, every: 10 * time.Millisecond}
	p.start()
	time.Sleep(80 * time.Millisecond)
	p.Write([]byte("report\n"))
	time.Sleep(40 * time.Millisecond)
	p.stop()
	p.stop() // a second stop is harmless
	out := b.String()
	if !strings.HasPrefix(out, clearLine+"dialing x.test… 0.") {
		t.Errorf("progress line not drawn: %q", out)
	}
	if !strings.Contains(out, "s"+clearLine+"report\n") {
		t.Errorf("the line is not erased before other output: %q", out)
	}
	if !strings.HasSuffix(out, clearLine) {
		t.Errorf("the line is not erased at the end: %q", out)
	}
	if strings.Count(out, "dialing x.test") < 3 {
		t.Errorf("the line is not updated: %q", out)
	}
}

// TestProgressQuick: a dial shorter than the delay draws nothing, and
// nothing is drawn when stderr is not a terminal.
func TestProgressQuick(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, label: "dialing", tty: true, delay: time.Hour, every: time.Hour}
	p.start()
	p.stop()
	q := newProgress(&b, "dialing")
	q.start()
	time.Sleep(progressDelay + 50*time.Millisecond)
	q.stop()
	if b.Len() != 0 {
		t.Errorf("wrote %q", b.String())
	}
}

// TestIsTerminal: buffers, pipes and the null device are not terminals.
func TestIsTerminal(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"buffer": &bytes.Buffer{}, "null": null, "pipe": w} {
		if isTerminal(out) {
			t.Errorf("%s is taken for a terminal", name)
		}
	}
}

// TestProtoFlag: -proto takes repeated and comma-separated versions.
func TestProtoFlag(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var c common
	c.register(fs, time.Second, "")
	if _, err := parse(fs, []string{"-proto", "h1, h2", "--proto=http/1.1,h3"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"h1", "h2", "h1", "h3"}; !slices.Equal(c.protos, want) {
		t.Errorf("protos %v, want %v", c.protos, want)
	}
	_, err := parse(fs, []string{"-proto", "h2,quic"})
	if !isUsage(err) || !strings.Contains(err.Error(), `unknown protocol "quic"`) {
		t.Errorf("bad -proto: %v", err)
	}
}

// TestParseInterspersed: flags may follow the arguments, until "--".
func TestParseInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	i := fs.Bool("i", false, "")
	x := fs.String("X", "", "")
	args, err := parse(fs, []string{"URL", "-i", "second", "-X", "PUT", "--", "-not-a-flag"})
	if err != nil {
		t.Fatal(err)
	}
	if !*i || *x != "PUT" || !slices.Equal(args, []string{"URL", "second", "-not-a-flag"}) {
		t.Errorf("-i %v, -X %q, args %q", *i, *x, args)
	}
}
