// Package dnsserver runs a small DNS server on loopback: the one behind
// dialertest's DNS, and, with its handlers, behind internal/dnstest for the
// resolver and integration tests.
//
// The server answers from records set with A, AAAA, HTTPS, CNAME and Add
// (following CNAMEs it knows, like a recursive resolver would), and lets a
// test replace the behaviour for any name and type with a Handler: delay,
// SERVFAIL, NXDOMAIN, NODATA, truncation over UDP, garbage, silence, or
// anything written by hand. UDP and TCP share one port.
//
// Replies over UDP are truncated to the size the client advertised (EDNS0, or
// 512 bytes without it) with the TC bit set, so large answers come in full
// only over TCP.
package dnsserver

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Record types, so that callers need not import a DNS package.
const (
	TypeA     = dns.TypeA
	TypeAAAA  = dns.TypeAAAA
	TypeCNAME = dns.TypeCNAME
	TypeHTTPS = dns.TypeHTTPS
	// TypeAny in Set matches every record type.
	TypeAny uint16 = 0
)

// TTL is the TTL of records added by A, AAAA, HTTPS and CNAME.
const TTL = 300

// NegativeTTL is the SOA minimum sent with NXDOMAIN and NODATA replies.
const NegativeTTL = 30

// Query is one query the server received.
type Query struct {
	Name      string // lower case, fully qualified
	Type      uint16
	Transport string // "udp" or "tcp"
	Time      time.Time
}

// Request is a query as a Handler sees it.
type Request struct {
	Msg       *dns.Msg
	Transport string // "udp" or "tcp"

	srv *Server
}

// Done is closed when the server closes. Handlers that wait must give up
// when it is closed, or Close blocks.
func (r *Request) Done() <-chan struct{} { return r.srv.done }

// Reply returns the server's default reply to r: the records set for the
// name and type (after CNAMEs known to the server), NODATA when the name has
// other records, NXDOMAIN otherwise.
func (r *Request) Reply() *dns.Msg { return r.srv.reply(r.Msg) }

// Handler decides how the server answers one query. It writes a reply to w,
// or writes nothing to drop the query. Replies written with w.WriteMsg over
// UDP are truncated to the client's size.
type Handler func(w dns.ResponseWriter, r *Request)

type key struct {
	name  string
	qtype uint16
}

// Server is a DNS server on loopback.
type Server struct {
	addr string
	udp  *dns.Server
	tcp  *dns.Server
	done chan struct{}

	fatalf func(format string, args ...any) // reports a caller's mistake; nil: panic

	mu       sync.Mutex
	records  map[key][]dns.RR
	handlers map[key]Handler
	def      Handler
	queries  []Query
	closed   bool
	// inFlight is how many queries are being handled now; maxInFlight
	// is the most there ever were at once.
	inFlight, maxInFlight int
}

// New starts a server listening on addr for both UDP and TCP. With port 0 a
// port free for both is chosen.
func New(addr string) (*Server, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dialertest: bad address %q: %w", addr, err)
	}
	var (
		pc net.PacketConn
		ln net.Listener
	)
	for range 10 {
		pc, err = net.ListenPacket("udp", ap.String())
		if err != nil {
			return nil, fmt.Errorf("dialertest: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		ln, err = net.Listen("tcp", netip.AddrPortFrom(ap.Addr(), port).String())
		if err == nil {
			break
		}
		pc.Close()
		if ap.Port() != 0 {
			return nil, fmt.Errorf("dialertest: %w", err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("dialertest: no port free for both UDP and TCP: %w", err)
	}
	s := &Server{
		addr:     ln.Addr().String(),
		done:     make(chan struct{}),
		records:  make(map[key][]dns.RR),
		handlers: make(map[key]Handler),
	}
	s.udp = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve("udp"))}
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serve("tcp"))}
	if err := activate(s.udp); err != nil {
		pc.Close()
		ln.Close()
		return nil, err
	}
	if err := activate(s.tcp); err != nil {
		s.udp.Shutdown()
		ln.Close()
		return nil, err
	}
	return s, nil
}

// activate runs srv in a goroutine and waits until it serves.
func activate(srv *dns.Server) error {
	started := make(chan struct{})
	failed := make(chan error, 1)
	srv.NotifyStartedFunc = func() { close(started) }
	go func() {
		if err := srv.ActivateAndServe(); err != nil {
			failed <- err
		}
	}()
	select {
	case <-started:
		return nil
	case err := <-failed:
		return fmt.Errorf("dialertest: %w", err)
	}
}

// Addr returns the address the server listens on, "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr }

// Close stops the server and waits for its handlers to return. It may be
// called more than once.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.done)
	s.udp.Shutdown()
	s.tcp.Shutdown()
}

// Set makes h answer queries for name and qtype (TypeAny: every type) in
// place of the default reply. A nil h removes the behaviour. Set may be
// called at any time.
func (s *Server) Set(name string, qtype uint16, h Handler) {
	k := key{canonical(name), qtype}
	s.mu.Lock()
	defer s.mu.Unlock()
	if h == nil {
		delete(s.handlers, k)
	} else {
		s.handlers[k] = h
	}
}

// SetDefault makes h answer every query that no Set behaviour matches.
// A nil h restores the default reply.
func (s *Server) SetDefault(h Handler) {
	s.mu.Lock()
	s.def = h
	s.mu.Unlock()
}

// A sets the A records of name. No addresses removes them.
func (s *Server) A(name string, ips ...string) { s.addrs(name, TypeA, ips) }

// AAAA sets the AAAA records of name. No addresses removes them.
func (s *Server) AAAA(name string, ips ...string) { s.addrs(name, TypeAAAA, ips) }

func (s *Server) addrs(name string, qtype uint16, ips []string) {
	name = canonical(name)
	rrs := make([]dns.RR, 0, len(ips))
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip)
		if err != nil || a.Is4() != (qtype == TypeA) {
			s.fail(fmt.Errorf("bad %s address %q for %s", dns.TypeToString[qtype], ip, name))
			return
		}
		hdr := dns.RR_Header{Name: name, Rrtype: qtype, Class: dns.ClassINET, Ttl: TTL}
		if qtype == TypeA {
			rrs = append(rrs, &dns.A{Hdr: hdr, A: a.AsSlice()})
		} else {
			rrs = append(rrs, &dns.AAAA{Hdr: hdr, AAAA: a.AsSlice()})
		}
	}
	s.put(name, qtype, rrs)
}

// HTTPS sets the HTTPS records of name, each given in presentation format
// without owner, TTL and type, such as
// `1 . alpn=h3,h2 port=8443 ipv4hint=127.0.0.1` or `0 alias.example.`.
// No values removes them.
func (s *Server) HTTPS(name string, values ...string) {
	name = canonical(name)
	rrs := make([]dns.RR, 0, len(values))
	for _, v := range values {
		rr, err := parse(fmt.Sprintf("%s %d IN HTTPS %s", name, TTL, v))
		if err != nil {
			s.fail(err)
			return
		}
		rrs = append(rrs, rr)
	}
	s.put(name, TypeHTTPS, rrs)
}

// CNAME makes name an alias of target. An empty target removes it.
func (s *Server) CNAME(name, target string) {
	name = canonical(name)
	if target == "" {
		s.put(name, TypeCNAME, nil)
		return
	}
	hdr := dns.RR_Header{Name: name, Rrtype: TypeCNAME, Class: dns.ClassINET, Ttl: TTL}
	s.put(name, TypeCNAME, []dns.RR{&dns.CNAME{Hdr: hdr, Target: canonical(target)}})
}

// Add adds records given in full presentation format, such as
// "a.test. 60 IN A 192.0.2.1", to the records of their owner and type.
// The records are served in the order added.
func (s *Server) Add(records ...string) {
	for _, text := range records {
		rr, err := parse(text)
		if err != nil {
			s.fail(err)
			return
		}
		h := rr.Header()
		h.Name = canonical(h.Name)
		s.mu.Lock()
		k := key{h.Name, h.Rrtype}
		s.records[k] = append(s.records[k], rr)
		s.mu.Unlock()
	}
}

func (s *Server) put(name string, qtype uint16, rrs []dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(rrs) == 0 {
		delete(s.records, key{name, qtype})
	} else {
		s.records[key{name, qtype}] = rrs
	}
}

func parse(text string) (dns.RR, error) {
	rr, err := dns.NewRR(text)
	if err != nil {
		return nil, fmt.Errorf("bad record %q: %w", text, err)
	}
	if rr == nil {
		return nil, fmt.Errorf("bad record %q: empty", text)
	}
	return rr, nil
}

// SetFatal makes f report a caller's mistake, such as a bad address or
// record given to A, AAAA, HTTPS or Add, in place of a panic: a test's
// Fatalf. Call it before anything else.
func (s *Server) SetFatal(f func(format string, args ...any)) { s.fatalf = f }

// fail reports a caller's mistake through the SetFatal function, and panics
// if there is none or it returns.
func (s *Server) fail(err error) {
	if s.fatalf != nil {
		s.fatalf("dialertest: %v", err)
	}
	panic("dialertest: " + err.Error())
}

// Queries returns the queries received so far, oldest first.
func (s *Server) Queries() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries)
}

// Total returns how many queries the server received, over both
// transports, for every name and type.
func (s *Server) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queries)
}

// MaxInFlight returns the largest number of queries the server held at
// once: received, and neither answered nor dropped by their handler yet.
// With a Delay handler it tells how many queries clients had in flight
// together (a query a client gave up on counts until its handler ends).
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

// Count returns how many queries for name and qtype (TypeAny: every type)
// were received over either transport.
func (s *Server) Count(name string, qtype uint16) int {
	name = canonical(name)
	n := 0
	for _, q := range s.Queries() {
		if q.Name == name && (qtype == TypeAny || q.Type == qtype) {
			n++
		}
	}
	return n
}

func (s *Server) serve(transport string) func(dns.ResponseWriter, *dns.Msg) {
	return func(w dns.ResponseWriter, m *dns.Msg) {
		if len(m.Question) != 1 {
			w.WriteMsg(new(dns.Msg).SetRcodeFormatError(m))
			return
		}
		q := m.Question[0]
		s.mu.Lock()
		name := s.served(q)
		s.queries = append(s.queries, Query{Name: name, Type: q.Qtype, Transport: transport, Time: time.Now()})
		h := s.handlers[key{name, q.Qtype}]
		if h == nil {
			h = s.handlers[key{name, TypeAny}]
		}
		if h == nil {
			h = s.def
		}
		s.inFlight++
		s.maxInFlight = max(s.maxInFlight, s.inFlight)
		s.mu.Unlock()
		// The query is in flight until it is answered, or dropped.
		done := sync.OnceFunc(func() {
			s.mu.Lock()
			s.inFlight--
			s.mu.Unlock()
		})
		defer done()
		w = doneWriter{w, done}
		if h == nil {
			h = Default()
		}
		if transport == "udp" {
			w = truncWriter{w, m}
		}
		h(w, &Request{Msg: m, Transport: transport, srv: s})
	}
}

// doneWriter calls done before it writes a reply.
type doneWriter struct {
	dns.ResponseWriter
	done func()
}

func (w doneWriter) WriteMsg(m *dns.Msg) error {
	w.done()
	return w.ResponseWriter.WriteMsg(m)
}

func (w doneWriter) Write(b []byte) (int, error) {
	w.done()
	return w.ResponseWriter.Write(b)
}

// truncWriter truncates replies to the size the client can receive over UDP.
type truncWriter struct {
	dns.ResponseWriter
	req *dns.Msg
}

func (w truncWriter) WriteMsg(m *dns.Msg) error {
	size := dns.MinMsgSize
	if opt := w.req.IsEdns0(); opt != nil {
		size = int(opt.UDPSize())
	}
	m.Truncate(size)
	return w.ResponseWriter.WriteMsg(m)
}

// reply builds the default reply to req from the records.
func (s *Server) reply(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg).SetReply(req)
	m.RecursionAvailable = true
	m.Compress = true
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	q := req.Question[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	name := s.served(q)
	// owner is the name of the first records, which answer the name asked.
	owner := canonical(q.Name)
	seen := map[string]bool{name: true}
	for {
		if rrs := s.records[key{name, q.Qtype}]; len(rrs) > 0 {
			m.Answer = append(m.Answer, owned(copyRRs(rrs), owner)...)
			return m
		}
		cname := s.records[key{name, TypeCNAME}]
		if len(cname) == 0 {
			break
		}
		m.Answer = append(m.Answer, owned(copyRRs(cname), owner)...)
		owner = ""
		name = canonical(cname[0].(*dns.CNAME).Target)
		if seen[name] {
			return m // a CNAME loop: serve the chain as it is
		}
		seen[name] = true
	}
	if !s.hasName(name) {
		m.Rcode = dns.RcodeNameError
	}
	m.Ns = append(m.Ns, soa())
	return m
}

// served is the name whose records and handlers answer q: q's own name,
// except that the HTTPS records of a name answer its port-prefixed names
// too ("_8443._https.a.test", RFC 9460 §9.1) that have no records or
// handler of their own, so that tests on any port publish a name's HTTPS
// records once. The query is logged under the served name. s.mu is held.
func (s *Server) served(q dns.Question) string {
	name := canonical(q.Name)
	if q.Qtype != TypeHTTPS || s.hasName(name) || s.handlers[key{name, TypeHTTPS}] != nil || s.handlers[key{name, TypeAny}] != nil {
		return name
	}
	labels := dns.SplitDomainName(name)
	if len(labels) < 3 || labels[1] != "_https" || len(labels[0]) < 2 || labels[0][0] != '_' {
		return name
	}
	if _, err := strconv.ParseUint(labels[0][1:], 10, 16); err != nil {
		return name
	}
	return dns.Fqdn(strings.Join(labels[2:], "."))
}

// owned sets the owner name of rrs to owner, unless owner is "".
func owned(rrs []dns.RR, owner string) []dns.RR {
	if owner != "" {
		for _, rr := range rrs {
			rr.Header().Name = owner
		}
	}
	return rrs
}

func (s *Server) hasName(name string) bool {
	for k := range s.records {
		if k.name == name {
			return true
		}
	}
	return false
}

func copyRRs(rrs []dns.RR) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
	}
	return out
}

func soa() dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: TTL},
		Ns:      "ns.dnstest.",
		Mbox:    "hostmaster.dnstest.",
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  NegativeTTL,
	}
}

func canonical(name string) string { return dns.CanonicalName(strings.TrimSpace(name)) }

// Default answers with the default reply (see Request.Reply).
func Default() Handler {
	return func(w dns.ResponseWriter, r *Request) { w.WriteMsg(r.Reply()) }
}

// Drop never answers.
func Drop() Handler {
	return func(dns.ResponseWriter, *Request) {}
}

// Delay waits d, then answers with h (nil: the default reply). It gives up
// without answering if the server closes first.
func Delay(d time.Duration, h Handler) Handler {
	if h == nil {
		h = Default()
	}
	return func(w dns.ResponseWriter, r *Request) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			h(w, r)
		case <-r.Done():
		}
	}
}

// Rcode answers with an empty reply carrying rcode, such as
// dns.RcodeServerFailure.
func Rcode(rcode int) Handler {
	return func(w dns.ResponseWriter, r *Request) {
		m := new(dns.Msg).SetRcode(r.Msg, rcode)
		m.RecursionAvailable = true
		if rcode == dns.RcodeNameError {
			m.Ns = append(m.Ns, soa())
		}
		w.WriteMsg(m)
	}
}

// ServFail answers SERVFAIL.
func ServFail() Handler { return Rcode(dns.RcodeServerFailure) }

// NXDomain answers NXDOMAIN (with an SOA record).
func NXDomain() Handler { return Rcode(dns.RcodeNameError) }

// NoData answers NOERROR with no records and an SOA record.
func NoData() Handler {
	return Modify(func(m *dns.Msg) {
		m.Rcode = dns.RcodeSuccess
		m.Answer = nil
		m.Ns = []dns.RR{soa()}
	})
}

// TruncateUDP answers over UDP with an empty reply with the TC bit set, and
// over TCP with h (nil: the default reply).
func TruncateUDP(h Handler) Handler {
	if h == nil {
		h = Default()
	}
	return func(w dns.ResponseWriter, r *Request) {
		if r.Transport == "udp" {
			m := new(dns.Msg).SetReply(r.Msg)
			m.Truncated = true
			w.WriteMsg(m)
			return
		}
		h(w, r)
	}
}

// Garbage answers with the bytes b as they are (over TCP with the length
// prefix). Nil b sends a fixed short junk message.
func Garbage(b []byte) Handler {
	if b == nil {
		b = []byte("\x00\x01garbage, not DNS")
	}
	return func(w dns.ResponseWriter, r *Request) { w.Write(b) }
}

// Modify answers with the default reply after f has changed it: to send a
// wrong ID, a different question, a TC bit over TCP and the like.
func Modify(f func(*dns.Msg)) Handler {
	return func(w dns.ResponseWriter, r *Request) {
		m := r.Reply()
		f(m)
		w.WriteMsg(m)
	}
}
