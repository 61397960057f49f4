package dialer

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// A Transport asks a proxy function given with WithProxy on every request,
// as net/http does, but remembers the environment's answer per origin (the
// variables are read once per process), for at most maxEnvHops origins.
func TestTransportProxyCache(t *testing.T) {
	calls := 0
	tr := NewTransport(WithProxy(func(r *http.Request) (*url.URL, error) {
		calls++
		if r.URL.Host != "origin.test:8443" {
			t.Errorf("proxy function asked about %s", r.URL)
		}
		return url.Parse("http://127.0.0.1:1")
	}))
	for range 3 {
		hop, err := tr.httpsProxyFor("origin.test", 8443)
		if err != nil || hop == nil || hop.target() != "origin.test:8443" {
			t.Fatalf("hop %v, %v", hop, err)
		}
	}
	if calls != 3 || len(tr.envHops) != 0 {
		t.Errorf("WithProxy's function called %d times for 3 requests (want 3), %d origins cached (want 0)", calls, len(tr.envHops))
	}

	env := NewTransport()
	first, err := env.httpsProxyFor("origin.test", 443)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := env.httpsProxyFor("origin.test", 443)
	if again != first || len(env.envHops) != 1 {
		t.Errorf("second ask: %p after %p, %d origins cached; want the cached answer", again, first, len(env.envHops))
	}
	for i := range maxEnvHops + 10 {
		if _, err := env.httpsProxyFor(fmt.Sprintf("h%d.test", i), 443); err != nil {
			t.Fatal(err)
		}
	}
	if len(env.envHops) != maxEnvHops {
		t.Errorf("%d origins cached, want the bound %d", len(env.envHops), maxEnvHops)
	}
}
