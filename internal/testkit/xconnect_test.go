package testkit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestXConnectEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"HOME=/x"}, "GODEBUG=http2xconnect=1"},
		{[]string{"GODEBUG="}, "GODEBUG=http2xconnect=1"},
		{[]string{"GODEBUG=panicnil=1", "HOME=/x"}, "GODEBUG=panicnil=1,http2xconnect=1"},
		{[]string{"GODEBUG=http2xconnect=1,x=2"}, "GODEBUG=http2xconnect=1,x=2"},
	} {
		got := xconnectEnv(tc.env)
		var godebug []string
		for _, kv := range got {
			if strings.HasPrefix(kv, "GODEBUG=") {
				godebug = append(godebug, kv)
			}
		}
		if len(godebug) != 1 || godebug[0] != tc.want {
			t.Errorf("xconnectEnv(%q) GODEBUG %q, want %q", tc.env, godebug, tc.want)
		}
		if slices.Contains(tc.env, "HOME=/x") && !slices.Contains(got, "HOME=/x") {
			t.Errorf("xconnectEnv(%q) = %q lost HOME", tc.env, got)
		}
	}
}

// helperEnv makes TestEnsureXConnectHelper act: it is set only in the
// processes TestEnsureXConnectReexec starts.
const helperEnv = "TESTKIT_XCONNECT_HELPER"

// helperExit is the exit code the helper ends with, so that the test can
// tell it travelled back through the re-executing parent.
const helperExit = 7

// TestEnsureXConnectReexec starts this test binary without the setting and
// with another GODEBUG value. Its TestMain must re-execute it with both,
// and hand back the exit code of the child, which runs only
// TestEnsureXConnectHelper.
func TestEnsureXConnectReexec(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestEnsureXConnectHelper$", "-test.count=1")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") && !strings.HasPrefix(kv, helperEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "GODEBUG=panicnil=0", helperEnv+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != helperExit {
		t.Fatalf("helper: %v, want exit code %d; output:\n%s", err, helperExit, out.Bytes())
	}
	if want := "GODEBUG=panicnil=0,http2xconnect=1\n"; !strings.Contains(out.String(), want) {
		t.Errorf("helper output %q, want %q", out.String(), want)
	}
}

func TestEnsureXConnectHelper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("run by TestEnsureXConnectReexec")
	}
	fmt.Printf("GODEBUG=%s\n", os.Getenv("GODEBUG"))
	os.Exit(helperExit)
}
