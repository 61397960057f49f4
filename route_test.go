package dialer

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// A Transport derives an https request's route (origin, proxy, pool key)
// once per host when the proxy is the environment's, for at most
// maxEnvHops hosts, and on every request when WithProxy's function says,
// as that function may answer differently each time.
func TestTransportRouteCache(t *testing.T) {
	req := func(host string) *http.Request {
		return &http.Request{URL: &url.URL{Scheme: "https", Host: host, Path: "/"}}
	}
	env := NewTransport()
	first, err := env.httpsRoute(req("origin.test:8443"))
	if err != nil {
		t.Fatal(err)
	}
	want := originKey(env.trust.via(first.hop), "origin.test", 8443)
	if first.host != "origin.test" || first.port != 8443 || first.key != want {
		t.Errorf("route %+v, want origin.test 8443 with key %+v", first, want)
	}
	again, _ := env.httpsRoute(req("origin.test:8443"))
	if again != first || len(env.routes) != 1 {
		t.Errorf("second request: route %+v after %+v, %d hosts cached; want the cached route", again, first, len(env.routes))
	}
	if r, _ := env.httpsRoute(req("origin.test")); r.port != 443 || r.key == first.key {
		t.Errorf("default port: route %+v", r)
	}
	if _, err := env.httpsRoute(req("origin.test:0")); err == nil {
		t.Error("port 0 got a route")
	}
	for i := range maxEnvHops + 10 {
		if _, err := env.httpsRoute(req(fmt.Sprintf("h%d.test", i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(env.routes) != maxEnvHops {
		t.Errorf("%d hosts cached, want the bound %d", len(env.routes), maxEnvHops)
	}

	calls := 0
	tr := NewTransport(WithProxy(func(r *http.Request) (*url.URL, error) {
		calls++
		return url.Parse(fmt.Sprintf("http://127.0.0.1:%d", calls))
	}))
	var keys []poolKey
	for range 3 {
		r, err := tr.httpsRoute(req("origin.test:8443"))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, r.key)
	}
	if calls != 3 || len(tr.routes) != 0 || keys[0] == keys[1] {
		t.Errorf("WithProxy's function called %d times for 3 requests (want 3), %d hosts cached (want 0), keys through different proxies equal: %v",
			calls, len(tr.routes), keys[0] == keys[1])
	}
}
