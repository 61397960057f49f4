package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Progress line timing: nothing is drawn for a dial that ends within
// progressDelay, then the line is redrawn every progressEvery.
const (
	progressDelay = 300 * time.Millisecond
	progressEvery = 100 * time.Millisecond
)

// clearLine returns the cursor to the start of the line and erases it.
const clearLine = "\r\x1b[K"

// A progress draws a one-line status ("dialing example.com… 0.8s") on a
// terminal while a dial waits, updated in place and cleared when the dial
// ends. On anything but a terminal it draws nothing.
//
// A progress is also an io.Writer onto its terminal that erases the status
// line before each write, so that output during the dial (such as the race
// report) is not mixed with it; the status is drawn again on the next tick.
type progress struct {
	w     io.Writer
	label string
	tty   bool
	delay time.Duration
	every time.Duration

	mu    sync.Mutex // serialises writes to w
	shown bool       // a status line is on screen

	stopc chan struct{} // closed by stop
	done  chan struct{} // closed when the drawing goroutine returns
}

// newProgress returns a stopped progress that labels its line with label
// when w is a terminal.
func newProgress(w io.Writer, label string) *progress {
	return &progress{w: w, label: label, tty: isTerminal(w), delay: progressDelay, every: progressEvery}
}

// start starts the clock and, on a terminal, the goroutine that draws the
// line. stop must be called before the command returns.
func (p *progress) start() {
	if !p.tty || p.stopc != nil {
		return
	}
	p.stopc, p.done = make(chan struct{}), make(chan struct{})
	go p.run(time.Now(), p.stopc, p.done)
}

func (p *progress) run(start time.Time, stopc <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTimer(p.delay)
	defer t.Stop()
	for {
		select {
		case <-stopc:
			return
		case now := <-t.C:
			p.mu.Lock()
			fmt.Fprintf(p.w, "%s%s… %.1fs", clearLine, p.label, now.Sub(start).Seconds())
			p.shown = true
			p.mu.Unlock()
			t.Reset(p.every)
		}
	}
}

// stop stops the drawing goroutine, waits for it and erases the line. It
// may be called more than once.
func (p *progress) stop() {
	if p.stopc == nil {
		return
	}
	close(p.stopc)
	<-p.done
	p.stopc, p.done = nil, nil
	p.mu.Lock()
	p.erase()
	p.mu.Unlock()
}

// Write erases the status line and writes b.
func (p *progress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.erase()
	return p.w.Write(b)
}

// hold erases the status line and runs write, which writes elsewhere (to
// stdout on the same terminal), with the line kept off until it returns.
func (p *progress) hold(write func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.erase()
	write()
}

// erase erases the status line if one is shown; p.mu must be held.
func (p *progress) erase() {
	if p.shown {
		io.WriteString(p.w, clearLine)
		p.shown = false
	}
}

// isTerminal reports whether w is a terminal: a character device other
// than the null device, with TERM not "dumb".
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}
