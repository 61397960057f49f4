package testkit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
)

// xconnectSetting is the GODEBUG setting that makes net/http's HTTP/2 server
// accept RFC 8441 extended CONNECT and advertise
// SETTINGS_ENABLE_CONNECT_PROTOCOL. net/http reads it once, with os.Getenv
// in an init func, and the go command rejects it in //go:debug lines and
// go.mod, so a process gets it only from its environment at start-up.
const xconnectSetting = "http2xconnect=1"

// forwardedSignals are passed on to the re-executed process; SIGQUIT lets
// "go test -timeout" get the child's goroutine dump.
var forwardedSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT}

// XConnectEnabled reports whether this process started with
// GODEBUG=http2xconnect=1, tested the way net/http tests it, so that HTTP/2
// servers (StartHTTP) accept WebSocket over extended CONNECT.
func XConnectEnabled() bool {
	return strings.Contains(os.Getenv("GODEBUG"), xconnectSetting)
}

// EnsureXConnect makes sure the process runs with GODEBUG=http2xconnect=1.
// When it already does, it returns (0, false). Otherwise it runs the same
// executable again with the same arguments and the setting added to GODEBUG
// (keeping what was there), passes stdin, stdout, stderr and the usual
// termination signals through, and returns the child's exit code with
// reexeced true; the caller must then exit with that code:
//
//	func TestMain(m *testing.M) {
//		if code, ok := testkit.EnsureXConnect(); ok {
//			os.Exit(code)
//		}
//		os.Exit(m.Run())
//	}
//
// It must run before anything else in the process (flag parsing aside): the
// parent does nothing but wait for the child. A child killed by signal N
// yields 128+N; a child that cannot be started yields 1, with the reason on
// stderr.
func EnsureXConnect() (code int, reexeced bool) {
	if XConnectEnabled() {
		return 0, false
	}
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = xconnectEnv(os.Environ())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "testkit: re-executing with GODEBUG=%s: %v\n", xconnectSetting, err)
		return 1, true
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-waited:
			return exitCode(err), true
		}
	}
}

// xconnectEnv returns env with xconnectSetting appended to GODEBUG.
func xconnectEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	godebug := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			godebug = v
			continue
		}
		out = append(out, kv)
	}
	if godebug == "" {
		godebug = xconnectSetting
	} else if !strings.Contains(godebug, xconnectSetting) {
		godebug += "," + xconnectSetting
	}
	return append(out, "GODEBUG="+godebug)
}

// exitCode turns the error of exec.Cmd.Wait into a process exit code.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "testkit: waiting for the re-executed process: %v\n", err)
		return 1
	}
	if code := ee.ExitCode(); code >= 0 {
		return code
	}
	if ws, ok := ee.Sys().(interface {
		Signaled() bool
		Signal() syscall.Signal
	}); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return 1
}
