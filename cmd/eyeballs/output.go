package main

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"

	"github.com/eyeballs/dialer"
)

// An output splits what a command prints between stdout and stderr by the
// -json convention every command follows:
//
//   - without -json, stdout carries the command's data (a response body,
//     the messages received, the records found) and stderr everything
//     meant for a person (progress, waterfalls, connection lines, errors);
//   - with -json, stdout carries only JSON, one object per line (NDJSON):
//     one dialer.Report per race as the race ends (resolve: one
//     dialer.Resolution). What would have gone to stdout goes to stderr
//     instead, unless a flag such as get's -o sends it to a file.
//
// An output is safe for concurrent use.
type output struct {
	json   bool
	stdout io.Writer
	stderr io.Writer

	mu sync.Mutex // serialises writes to stdout
	// around, if set, runs each write of a JSON line, so that a progress
	// line sharing the terminal is erased first (see progress.hold).
	around func(write func())
}

// newOutput returns the output of a command run with -json (asJSON) or
// without.
func newOutput(asJSON bool, stdout, stderr io.Writer) *output {
	return &output{json: asJSON, stdout: stdout, stderr: stderr}
}

// Data returns where the command's data goes: stdout, or stderr under
// -json.
func (o *output) Data() io.Writer {
	if o.json {
		return o.stderr
	}
	return o.stdout
}

// Report writes r as one line of JSON on stdout under -json, and does
// nothing otherwise or when r is nil.
func (o *output) Report(r *dialer.Report) {
	if o.json && r != nil {
		o.JSON(r)
	}
}

// JSON writes v on stdout as one line of JSON, whether or not -json was
// given.
func (o *output) JSON(v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // URLs with & and < stay readable
	if err := enc.Encode(v); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var err error
	write := func() { _, err = o.stdout.Write(b.Bytes()) }
	if o.around != nil {
		o.around(write)
	} else {
		write()
	}
	return err
}
