package dialer

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/eyeballs/dialer/internal/hev3"
)

// TestEarlySafe: only GET, HEAD and OPTIONS without a body or trailers may
// go in 0-RTT, where they can be replayed.
func TestEarlySafe(t *testing.T) {
	req := func(method string, body string) *http.Request {
		r, err := http.NewRequest(method, "https://x.test/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			r, _ = http.NewRequest(method, "https://x.test/", strings.NewReader(body))
		}
		return r
	}
	for _, m := range []string{"", http.MethodGet, http.MethodHead, http.MethodOptions} {
		if !earlySafe(req(m, "")) {
			t.Errorf("%q without a body: not early, want early", m)
		}
		if earlySafe(req(m, "x")) {
			t.Errorf("%q with a body: early", m)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodTrace, http.MethodConnect} {
		if earlySafe(req(m, "")) {
			t.Errorf("%s: early, want after the handshake", m)
		}
	}
	r := req(http.MethodGet, "")
	r.Trailer = http.Header{"X-Sum": nil}
	if earlySafe(r) {
		t.Error("GET with trailers: early")
	}
	// Idempotent, so the Transport may send it again, but not safe.
	r = req(http.MethodPut, "")
	r.Header.Set("Idempotency-Key", "1")
	if earlySafe(r) {
		t.Error("PUT with an Idempotency-Key: early")
	}
}

// TestCovers: new SETTINGS keep a promise when they enable at least what
// the remembered ones did.
func TestCovers(t *testing.T) {
	all := hev3.Settings{ExtendedConnect: true, Datagrams: true, WebTransport: true}
	for _, tc := range []struct {
		s, promised hev3.Settings
		want        bool
	}{
		{all, all, true},
		{all, hev3.Settings{}, true},
		{hev3.Settings{}, hev3.Settings{}, true},
		{hev3.Settings{Datagrams: true, WebTransport: true}, hev3.Settings{ExtendedConnect: true}, false},
		{hev3.Settings{ExtendedConnect: true}, hev3.Settings{ExtendedConnect: true, Datagrams: true}, false},
		{hev3.Settings{ExtendedConnect: true, Datagrams: true}, all, false},
	} {
		if got := covers(tc.s, tc.promised); got != tc.want {
			t.Errorf("covers(%+v, %+v) = %v, want %v", tc.s, tc.promised, got, tc.want)
		}
	}
}

// TestPlanEarly: a race dials early only on SETTINGS remembered in its own
// partition (trust and origin) from a round trip of minEarlyRTT or more, a
// WebSocket only with WithEarlyData and
// extended CONNECT remembered, WebTransport and races without h3 never.
func TestPlanEarly(t *testing.T) {
	d := New()
	cfg := d.base
	spec := raceSpec{host: "x.test", port: 443, tls: cfg.tlsConfig(), versions: hev3.AllVersions}
	if p := d.planEarly(cfg, spec, false); p != nil {
		t.Fatalf("nothing remembered: plan %+v", p)
	}
	sess := d.sessions.get(originKey(cfg.trust(), "x.test", 443))
	sess.SetH3Settings(&http3.Settings{EnableExtendedConnect: true, EnableDatagrams: true})
	sess.setEarlyRTT(time.Millisecond)
	if p := d.planEarly(cfg, spec, false); p != nil {
		t.Fatalf("1 ms round trip: plan %+v, want none below %v", p, minEarlyRTT)
	}
	sess.setEarlyRTT(20 * time.Millisecond)
	p := d.planEarly(cfg, spec, false)
	if p == nil || !p.promised.ExtendedConnect || !p.promised.Datagrams || p.promised.WebTransport {
		t.Fatalf("remembered SETTINGS: plan %+v, want extended CONNECT and datagrams promised", p)
	}
	if p := d.planEarly(cfg, spec, true); p != nil {
		t.Error("WebSocket without WithEarlyData: dials early")
	}
	opt := cfg.with([]Option{WithEarlyData()})
	if p := d.planEarly(opt, spec, true); p == nil {
		t.Error("WebSocket with WithEarlyData: does not dial early")
	}
	other := spec
	other.port = 8443
	if p := d.planEarly(cfg, other, false); p != nil {
		t.Error("another port: dials early on SETTINGS remembered for 443")
	}
	foreign := cfg.with([]Option{WithTLSConfig(&tls.Config{ServerName: "x.test"})})
	if p := d.planEarly(foreign, spec, false); p != nil {
		t.Error("another trust: dials early on SETTINGS remembered under the Dialer's")
	}
	wt := spec
	wt.wt = &wtRequest{}
	if p := d.planEarly(opt, wt, true); p != nil {
		t.Error("WebTransport: dials early")
	}
	noH3 := spec
	noH3.versions = hev3.Versions(hev3.H2) | hev3.Versions(hev3.H1)
	if p := d.planEarly(cfg, noH3, false); p != nil {
		t.Error("no h3 in the race: plan")
	}

	d.sessions.get(originKey(cfg.trust(), "x.test", 443)).SetH3Settings(&http3.Settings{EnableDatagrams: true})
	if p := d.planEarly(opt, spec, true); p != nil {
		t.Error("WebSocket with extended CONNECT not remembered: dials early")
	}
}
