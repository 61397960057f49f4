package resolver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/dnstest"
	"github.com/eyeballs/dialer/internal/hev3"
	"github.com/miekg/dns"
)

// fuzzName is the name FuzzAnswer looks up; fuzzWire is its wire form.
const (
	fuzzName = "fuzz.test."
	fuzzWire = "\x04fuzz\x04test\x00"
)

// Bounds of one FuzzAnswer lookup. Every query gets an answer at once (see
// fuzzServer), so a lookup that gets near them hangs somewhere.
const (
	fuzzAttempt = 2 * time.Second
	fuzzLookup  = 10 * time.Second
)

// fuzzServer answers every query on a dnstest server with the current fuzz
// input as raw bytes: over UDP and, after a reply with the TC bit, over TCP,
// where the TC bit is cleared unless the Z bit is set.
//
// The input is patched so that it is not ignored as forged: its ID becomes
// the query's, and when its question is fuzzName in wire form (uncompressed,
// at offset 12) that question is replaced by the query's name and type. So
// one input answers the A, AAAA and HTTPS lookups, and the re-queries for
// CNAME and AliasMode targets too (records whose owner is a compression
// pointer to offset 12 then belong to the name asked).
//
// Over UDP a SERVFAIL for the query follows the input, so that a reply the
// resolver ignores costs a round trip rather than the attempt's timeout.
type fuzzServer struct {
	mu    sync.Mutex
	reply []byte
}

func (s *fuzzServer) set(b []byte) {
	s.mu.Lock()
	s.reply = b
	s.mu.Unlock()
}

func (s *fuzzServer) handle(w dns.ResponseWriter, req *dnstest.Request) {
	s.mu.Lock()
	b := patchReply(s.reply, req.Msg)
	s.mu.Unlock()
	if req.Transport == "tcp" && len(b) >= 4 && b[3]&0x40 == 0 {
		b[2] &^= 0x02 // clear TC, unless Z is set
	}
	w.Write(b)
	if req.Transport == "udp" {
		w.WriteMsg(new(dns.Msg).SetRcode(req.Msg, dns.RcodeServerFailure))
	}
}

// patchReply returns a copy of b with the ID and question of q (see
// fuzzServer).
func patchReply(b []byte, q *dns.Msg) []byte {
	out := bytes.Clone(b)
	if len(out) >= 2 {
		binary.BigEndian.PutUint16(out, q.Id)
	}
	const qname = 12
	if len(out) < qname+len(fuzzWire)+2 || string(out[qname:qname+len(fuzzWire)]) != fuzzWire {
		return out
	}
	name := make([]byte, 256)
	n, err := dns.PackDomainName(q.Question[0].Name, name, 0, nil, false)
	if err != nil {
		return out
	}
	rest := out[qname+len(fuzzWire):]
	binary.BigEndian.PutUint16(rest, q.Question[0].Qtype)
	return slices.Concat(out[:qname], name[:n], rest)
}

// fuzzMsg packs a reply to a query for fuzzName, with f filling it in.
func fuzzMsg(tb testing.TB, compress bool, f func(m *dns.Msg)) []byte {
	tb.Helper()
	m := new(dns.Msg)
	m.SetQuestion(fuzzName, dns.TypeA)
	m.Response = true
	m.RecursionAvailable = true
	m.Compress = compress
	f(m)
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func fuzzRR(tb testing.TB, s string) dns.RR {
	tb.Helper()
	rr, err := dns.NewRR(s)
	if err != nil || rr == nil {
		tb.Fatalf("bad record %q: %v", s, err)
	}
	return rr
}

func fuzzRRs(tb testing.TB, ss ...string) []dns.RR {
	tb.Helper()
	var out []dns.RR
	for _, s := range ss {
		out = append(out, fuzzRR(tb, s))
	}
	return out
}

// FuzzAnswer feeds arbitrary bytes as the DNS reply to every query of A,
// AAAA and HTTPS lookups over loopback, and checks that each lookup returns
// in time with an error or a well-formed answer, and that the cache gives
// the same answer again, unchanged by what its caller did to the first.
func FuzzAnswer(f *testing.F) {
	seeds := [][]byte{
		// No records: NODATA.
		fuzzMsg(f, false, func(m *dns.Msg) {}),
		// Two addresses.
		fuzzMsg(f, false, func(m *dns.Msg) {
			m.Answer = fuzzRRs(f, "fuzz.test. 300 IN A 192.0.2.1", "fuzz.test. 300 IN A 192.0.2.2")
		}),
		// Every type, compressed; an IPv4-mapped AAAA; HTTPS records to
		// keep, trim and skip.
		fuzzMsg(f, true, func(m *dns.Msg) {
			m.Answer = fuzzRRs(f,
				"fuzz.test. 300 IN A 192.0.2.1",
				"fuzz.test. 300 IN AAAA 2001:db8::1",
				"fuzz.test. 300 IN AAAA ::ffff:192.0.2.9",
				"fuzz.test. 300 IN HTTPS 1 . alpn=h3,h2 port=8443 ipv4hint=192.0.2.1 ipv6hint=2001:db8::1 ech=AAhmYWtlLWVjaA==",
				"fuzz.test. 300 IN HTTPS 2 svc.test. mandatory=alpn alpn=h2 no-default-alpn",
				"fuzz.test. 300 IN HTTPS 3 bad.test. mandatory=key65000 key65000=x",
			)
		}),
		// A CNAME chain, all in the reply.
		fuzzMsg(f, true, func(m *dns.Msg) {
			m.Answer = fuzzRRs(f,
				"fuzz.test. 300 IN CNAME cdn.test.",
				"cdn.test. 60 IN CNAME edge.test.",
				"edge.test. 30 IN A 192.0.2.7",
				"edge.test. 30 IN AAAA 2001:db8::7",
				"edge.test. 30 IN HTTPS 1 . alpn=h2",
			)
		}),
		// A CNAME alone: the re-query for its target gets this reply
		// again, the CNAME's owner (a pointer to the question) renamed.
		fuzzMsg(f, true, func(m *dns.Msg) {
			m.Answer = fuzzRRs(f, "fuzz.test. 300 IN CNAME next.test.")
		}),
		// AliasMode next to ServiceMode: the alias wins, and loops.
		fuzzMsg(f, true, func(m *dns.Msg) {
			m.Answer = fuzzRRs(f, "fuzz.test. 300 IN HTTPS 0 pool.test.", "fuzz.test. 300 IN HTTPS 1 . alpn=h2")
		}),
		// AliasMode to ".": no service.
		fuzzMsg(f, false, func(m *dns.Msg) {
			m.Answer = fuzzRRs(f, "fuzz.test. 300 IN HTTPS 0 .")
		}),
		// NXDOMAIN with an SOA.
		fuzzMsg(f, false, func(m *dns.Msg) {
			m.Rcode = dns.RcodeNameError
			m.Ns = fuzzRRs(f, ". 300 IN SOA ns.test. host.test. 1 3600 600 86400 30")
		}),
		// SERVFAIL.
		fuzzMsg(f, false, func(m *dns.Msg) { m.Rcode = dns.RcodeServerFailure }),
		// TC bit: asked again over TCP, which answers in full.
		fuzzMsg(f, false, func(m *dns.Msg) {
			m.Truncated = true
			m.Answer = fuzzRRs(f, "fuzz.test. 300 IN A 192.0.2.1", "fuzz.test. 300 IN HTTPS 1 . alpn=h2")
		}),
		// TC bit and Z: truncated over TCP too.
		fuzzMsg(f, false, func(m *dns.Msg) {
			m.Truncated, m.Zero = true, true
		}),
		// Records of another class and another name: NODATA.
		fuzzMsg(f, false, func(m *dns.Msg) {
			a := fuzzRR(f, "fuzz.test. 300 IN A 192.0.2.1")
			a.Header().Class = dns.ClassCHAOS
			m.Answer = []dns.RR{a, fuzzRR(f, "other.test. 300 IN A 192.0.2.2")}
		}),
		// EDNS0 and a zero TTL: not cached.
		fuzzMsg(f, true, func(m *dns.Msg) {
			m.SetEdns0(1232, true)
			m.Answer = fuzzRRs(f, "fuzz.test. 0 IN A 192.0.2.1")
		}),
	}
	for _, b := range seeds {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte("\x00\x01garbage, not DNS"))

	fs := new(fuzzServer)
	srv := dnstest.Start(f)
	srv.SetDefault(fs.handle)

	f.Fuzz(func(t *testing.T, reply []byte) {
		if len(reply) > 8192 {
			t.Skip("larger than a UDP reply needs to be")
		}
		fs.set(reply)
		r, err := New(Config{Servers: []string{srv.Addr()}, HostsFile: "-", Timeout: fuzzAttempt})
		if err != nil {
			t.Fatal(err)
		}
		for _, typ := range []hev3.RecordType{hev3.A, hev3.AAAA, hev3.HTTPS} {
			ans := fuzzLookupOnce(t, r, typ)
			t.Logf("%v: %+v", typ, ans)
			checkAnswer(t, typ, ans)
			if ans.Err != nil {
				continue
			}
			want := cloneAnswer(ans)
			scribble(ans)
			// From the cache, or asked again with the same reply.
			again := fuzzLookupOnce(t, r, typ)
			if again.Err != nil || !reflect.DeepEqual(again.Addrs, want.Addrs) || !reflect.DeepEqual(again.Services, want.Services) {
				t.Fatalf("%v: second lookup %+v, first %+v", typ, again, want)
			}
		}
	})
}

func fuzzLookupOnce(t *testing.T, r *Resolver, typ hev3.RecordType) hev3.Answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), fuzzLookup)
	defer cancel()
	start := time.Now()
	ans := r.Lookup(ctx, fuzzName, typ)
	if d := time.Since(start); d > fuzzLookup+time.Second {
		t.Fatalf("%v lookup took %v, bounded by %v", typ, d, fuzzLookup)
	}
	return ans
}

// checkAnswer checks that ans is an error or a well-formed answer for typ.
func checkAnswer(t *testing.T, typ hev3.RecordType, ans hev3.Answer) {
	t.Helper()
	if ans.Err != nil {
		var e *Error
		if !errors.As(ans.Err, &e) {
			t.Errorf("%v: error %v (%T) is not an *Error", typ, ans.Err, ans.Err)
		}
		if ans.Addrs != nil || ans.Services != nil {
			t.Errorf("%v: error %v with data %+v", typ, ans.Err, ans)
		}
		return
	}
	switch typ {
	case hev3.A, hev3.AAAA:
		if ans.Services != nil {
			t.Errorf("%v: services %+v", typ, ans.Services)
		}
		for _, a := range ans.Addrs {
			// AAAA may hold IPv4-mapped addresses, as the record does; the
			// Happy Eyeballs machine drops them (hev3.FamilyOf).
			if typ == hev3.A && !a.Is4() || typ == hev3.AAAA && !a.Is6() || a.Zone() != "" {
				t.Errorf("%v: address %v", typ, a)
			}
		}
	case hev3.HTTPS:
		if ans.Addrs != nil {
			t.Errorf("HTTPS: addresses %v", ans.Addrs)
		}
		checkServices(t, ans.Services)
	}
}

func checkServices(t *testing.T, ss []hev3.ServiceInfo) {
	t.Helper()
	if !slices.IsSortedFunc(ss, func(a, b hev3.ServiceInfo) int { return int(a.Priority) - int(b.Priority) }) {
		t.Errorf("services not sorted by priority: %+v", ss)
	}
	for _, s := range ss {
		if s.Priority == 0 {
			t.Errorf("AliasMode record as a service: %+v", s)
		}
		if s.Target == "." || s.Target != strings.ToLower(s.Target) {
			t.Errorf("target %q", s.Target)
		}
		if len(s.ALPN) == 0 {
			t.Errorf("service without ALPN: %+v", s)
		}
		for _, a := range s.IPv4Hints {
			if !a.Is4() {
				t.Errorf("IPv4 hint %v", a)
			}
		}
		for _, a := range s.IPv6Hints {
			if !a.Is6() || a.Is4In6() || a.Zone() != "" {
				t.Errorf("IPv6 hint %v", a)
			}
		}
	}
}

// scribble overwrites the data of ans, as a careless caller might.
func scribble(ans hev3.Answer) {
	for i := range ans.Addrs {
		ans.Addrs[i] = netip.IPv6Unspecified()
	}
	for i := range ans.Services {
		s := &ans.Services[i]
		for j := range s.ALPN {
			s.ALPN[j] = "scribbled"
		}
		for j := range s.IPv4Hints {
			s.IPv4Hints[j] = netip.IPv4Unspecified()
		}
		for j := range s.IPv6Hints {
			s.IPv6Hints[j] = netip.IPv6Unspecified()
		}
		for j := range s.ECH {
			s.ECH[j] ^= 0xff
		}
		s.Priority = 0
	}
}

// FuzzSVCB parses an HTTPS record, in wire format (its RDATA) or in
// presentation format (what follows the type), and checks what services
// makes of it against the record's parameters (RFC 9460).
func FuzzSVCB(f *testing.F) {
	for _, s := range []string{
		`1 . alpn=h3,h2 port=8443 ipv4hint=192.0.2.1,192.0.2.2 ipv6hint=2001:db8::1 ech=AAhmYWtlLWVjaA==`,
		`2 Svc.Example. mandatory=alpn,port alpn=h2 port=443`,
		`3 . alpn=h3 no-default-alpn`,
		`4 . no-default-alpn`,
		`5 . mandatory=key65000 key65000=x`,
		`6 . mandatory=port alpn=h2`,
		`7 . mandatory=mandatory alpn=h2`,
		`8 . alpn="h\,2,h3" dohpath=/q{?dns} key9="\000"`,
		`0 alias.test.`,
		`0 .`,
	} {
		f.Add(false, []byte(s))
		rr, err := dns.NewRR("fuzz.test. 300 IN HTTPS " + s)
		if err != nil {
			f.Fatalf("%s: %v", s, err)
		}
		buf := make([]byte, 1024)
		n, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			f.Fatalf("%s: %v", s, err)
		}
		f.Add(true, buf[n-int(rr.Header().Rdlength):n])
	}
	f.Fuzz(func(t *testing.T, wire bool, data []byte) {
		rr, ok := parseHTTPS(wire, data)
		if !ok {
			return
		}
		const origin = "origin.test"
		ss, _ := services([]dns.RR{rr, &dns.A{Hdr: rr.Hdr}}, origin)
		if rr.Priority == 0 {
			if len(ss) != 0 {
				t.Fatalf("AliasMode %v gave %+v", rr, ss)
			}
			return
		}
		if len(ss) > 1 {
			t.Fatalf("%v gave %+v", rr, ss)
		}
		if len(ss) == 0 {
			if why := unusable(&rr.SVCB); why == "" {
				t.Fatalf("%v skipped", rr)
			}
			return
		}
		if why := unusable(&rr.SVCB); why != "" {
			t.Fatalf("%v used, yet %s: %+v", rr, why, ss[0])
		}
		checkServices(t, ss)
		checkService(t, &rr.SVCB, ss[0], origin)
	})
}

// parseHTTPS parses data as an HTTPS record's RDATA or presentation form.
func parseHTTPS(wire bool, data []byte) (*dns.HTTPS, bool) {
	var rr dns.RR
	if wire {
		if len(data) > 0xffff {
			return nil, false
		}
		hdr := fuzzWire + "\x00\x41\x00\x01\x00\x00\x01\x2c" // HTTPS IN 300
		msg := append([]byte(hdr), byte(len(data)>>8), byte(len(data)))
		msg = append(msg, data...)
		var err error
		if rr, _, err = dns.UnpackRR(msg, 0); err != nil {
			return nil, false
		}
	} else {
		if bytes.ContainsAny(data, "\n\r") {
			return nil, false
		}
		var err error
		if rr, err = dns.NewRR("fuzz.test. 300 IN HTTPS " + string(data)); err != nil {
			return nil, false
		}
	}
	h, ok := rr.(*dns.HTTPS)
	return h, ok
}

// unusable says why an RFC 9460 client must skip rr, or "".
func unusable(rr *dns.SVCB) string {
	keys := make(map[dns.SVCBKey]bool)
	var mandatory []dns.SVCBKey
	alpn := false
	for _, kv := range rr.Value {
		if keys[kv.Key()] {
			return "key " + kv.Key().String() + " appears twice" // RFC 9460 §2.2
		}
		keys[kv.Key()] = true
		switch v := kv.(type) {
		case *dns.SVCBMandatory:
			mandatory = v.Code
		case *dns.SVCBAlpn:
			alpn = len(v.Alpn) > 0
		}
	}
	for _, k := range mandatory {
		switch k {
		case dns.SVCB_ALPN, dns.SVCB_NO_DEFAULT_ALPN, dns.SVCB_PORT, dns.SVCB_IPV4HINT, dns.SVCB_ECHCONFIG, dns.SVCB_IPV6HINT:
		default:
			return "mandatory key " + k.String() + " is not understood"
		}
		if !keys[k] {
			return "mandatory key " + k.String() + " is missing"
		}
	}
	if keys[dns.SVCB_NO_DEFAULT_ALPN] && !alpn {
		return "no-default-alpn without alpn"
	}
	return ""
}

// checkService checks s, made of rr, against rr's parameters.
func checkService(t *testing.T, rr *dns.SVCB, s hev3.ServiceInfo, origin string) {
	t.Helper()
	if s.Priority != rr.Priority {
		t.Errorf("priority %d, record's %d", s.Priority, rr.Priority)
	}
	wantTarget := origin
	if rr.Target != "." && rr.Target != "" {
		wantTarget = strings.TrimSuffix(strings.ToLower(rr.Target), ".")
	}
	if s.Target != wantTarget {
		t.Errorf("target %q for %q, want %q", s.Target, rr.Target, wantTarget)
	}
	var (
		alpn      []string
		noDefault bool
		port      uint16
		ech       []byte
		v4, v6    []netip.Addr
	)
	for _, kv := range rr.Value {
		switch v := kv.(type) {
		case *dns.SVCBAlpn:
			alpn = v.Alpn
		case *dns.SVCBNoDefaultAlpn:
			noDefault = true
		case *dns.SVCBPort:
			port = v.Port
		case *dns.SVCBECHConfig:
			ech = v.ECH
		case *dns.SVCBIPv4Hint:
			for _, ip := range v.Hint {
				if ip4 := ip.To4(); ip4 != nil {
					v4 = append(v4, netip.AddrFrom4([4]byte(ip4)))
				}
			}
		case *dns.SVCBIPv6Hint:
			for _, ip := range v.Hint {
				if len(ip) == 16 && ip.To4() == nil {
					v6 = append(v6, netip.AddrFrom16([16]byte(ip)))
				}
			}
		}
	}
	wantALPN := slices.Clone(alpn)
	if !noDefault && !slices.Contains(alpn, defaultALPN) {
		wantALPN = append(wantALPN, defaultALPN)
	}
	if !slices.Equal(s.ALPN, wantALPN) {
		t.Errorf("ALPN %q for %q (no-default-alpn %v), want %q", s.ALPN, alpn, noDefault, wantALPN)
	}
	if s.Port != port {
		t.Errorf("port %d, want %d", s.Port, port)
	}
	if !bytes.Equal(s.ECH, ech) {
		t.Errorf("ECH %x, want %x", s.ECH, ech)
	}
	if !slices.Equal(s.IPv4Hints, v4) || !slices.Equal(s.IPv6Hints, v6) {
		t.Errorf("hints %v %v, want %v %v", s.IPv4Hints, s.IPv6Hints, v4, v6)
	}
	// s owns its data.
	if len(s.ALPN) > 0 && len(alpn) > 0 {
		s.ALPN[0] = "scribbled"
		if alpn[0] == "scribbled" {
			t.Error("ALPN shares the record's slice")
		}
	}
	if len(s.ECH) > 0 {
		s.ECH[0] ^= 0xff
		if ech[0] == s.ECH[0] {
			t.Error("ECH shares the record's slice")
		}
	}
}
