package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// moduleVersion returns the version of the eyeballs module the binary was
// built from ("v1.2.0", or a pseudo-version), or "" for a development
// build, and the VCS revision it was built at, if recorded.
func moduleVersion() (version, revision string, modified bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", "", false
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		version = v
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return version, revision, modified
}

// userAgent returns get's User-Agent: "eyeballs/VERSION", or "eyeballs".
func userAgent() string {
	if v, _, _ := moduleVersion(); v != "" {
		return "eyeballs/" + v
	}
	return "eyeballs"
}

// runVersion is "eyeballs version": the module version, the VCS revision
// and the Go toolchain, on one line of stdout.
func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "Usage: eyeballs version\n\nPrints the version of eyeballs, the revision it was built from and the Go version.\n", stderr)
	args, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(args) != 0 {
		return usagef("version takes no arguments")
	}
	v, rev, modified := moduleVersion()
	if v == "" {
		v = "(devel)"
	}
	line := "eyeballs " + v
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		line += " rev " + rev
		if modified {
			line += "+dirty"
		}
	}
	_, err = fmt.Fprintf(stdout, "%s %s %s/%s\n", line, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
