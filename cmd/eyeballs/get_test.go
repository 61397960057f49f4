package main

import (
	"strings"
	"testing"
)

// TestGet runs get in process, so that goleak (see TestMain) checks that
// the command leaves no connection or goroutine behind.
func TestGet(t *testing.T) {
	base, ns, ca := httpServer(t)
	code, out, errOut := runCmd(t, "", "get", "-noproxy", "-nameserver", ns, "-cacert", ca, base+"/hello")
	if code != 0 || out != "hello, eyeballs\n" {
		t.Errorf("get /hello: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "", "get", "-noproxy", "-f", "-nameserver", ns, "-cacert", ca, base+"/missing")
	if code != 7 || out != "" || !strings.Contains(errOut, "404") {
		t.Errorf("get -f of a 404: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "body", "get", "-noproxy", "-nameserver", ns, "-cacert", ca, "-d", "@-", base+"/echo")
	if code != 0 || out != "POST  body" {
		t.Errorf("get -d @-: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}

// TestResolve runs resolve in process.
func TestResolve(t *testing.T) {
	_, ns, _ := httpServer(t)
	code, out, errOut := runCmd(t, "", "resolve", "-nameserver", ns, "get.example.test")
	if code != 0 || out != "get.example.test.\t300\tIN\tA\t127.0.0.1\n;; endpoint 127.0.0.1:443 h2,h1\n" || !strings.Contains(errOut, "HTTPS  no records") {
		t.Errorf("resolve: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
}
