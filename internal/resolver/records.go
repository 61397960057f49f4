package resolver

import (
	"encoding/base64"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// MaxRecords is how many DNS records of one lookup LookupRecords keeps:
// enough for the CNAMEs and aliases of MaxHops hops and, after them, an
// answer of twice the addresses a race uses (hev3.MaxAddrs).
const MaxRecords = 48

// Records are the DNS records one lookup was read from, in the order they
// were met (see LookupRecords).
type Records struct {
	RRs []dns.RR
	// Omitted counts the records past MaxRecords, neither kept nor cached.
	Omitted int
}

// boundRecords keeps the first MaxRecords of rrs, as copies.
func boundRecords(rrs []dns.RR) Records {
	var recs Records
	if len(rrs) > MaxRecords {
		recs.Omitted = len(rrs) - MaxRecords
		rrs = rrs[:MaxRecords]
	}
	return recs.withRRs(rrs, 0)
}

// clone returns a deep copy of recs whose TTLs are age seconds lower (not
// below 0), as a cache hands out a record it has held for age seconds
// (RFC 1035 §4.1.3: the TTL is how long the record may still be cached).
func (recs Records) clone(age uint32) Records {
	return Records{Omitted: recs.Omitted}.withRRs(recs.RRs, age)
}

func (recs Records) withRRs(rrs []dns.RR, age uint32) Records {
	if len(rrs) == 0 {
		return recs
	}
	recs.RRs = make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		rr = dns.Copy(rr)
		h := rr.Header()
		h.Ttl -= min(age, h.Ttl)
		recs.RRs[i] = rr
	}
	return recs
}

// size estimates the bytes recs holds: each record's wire size, twice
// over for the structures that hold it.
func (recs Records) size() int {
	n := 0
	for _, rr := range recs.RRs {
		n += 2*dns.Len(rr) + 64
	}
	return n
}

// Presentation returns rr's data (what follows the type) in the
// presentation format of dig and the zone file (RFC 1035 §5.1), with
// SVCB and HTTPS SvcParams as RFC 9460 §2.1 and Appendix A write them:
//
//	1 . alpn="h3,h2" port=8443 ipv4hint=192.0.2.1 ech=AEn+DQBF... no-default-alpn
//
// alpn is quoted, as dig prints it; keys without a value are bare. Other
// types are as miekg/dns writes them.
func Presentation(rr dns.RR) string {
	var svcb *dns.SVCB
	switch rr := rr.(type) {
	case *dns.HTTPS:
		svcb = &rr.SVCB
	case *dns.SVCB:
		svcb = rr
	default:
		return strings.TrimPrefix(rr.String(), rr.Header().String())
	}
	parts := []string{strconv.Itoa(int(svcb.Priority)), svcb.Target}
	for _, kv := range svcb.Value {
		parts = append(parts, svcParam(kv))
	}
	return strings.Join(parts, " ")
}

// svcParam writes one SvcParam (RFC 9460 §2.1, §7).
func svcParam(kv dns.SVCBKeyValue) string {
	key := kv.Key().String()
	switch v := kv.(type) {
	case *dns.SVCBMandatory:
		keys := make([]string, len(v.Code))
		for i, k := range v.Code {
			keys[i] = k.String()
		}
		return key + "=" + strings.Join(keys, ",")
	case *dns.SVCBAlpn:
		// A value-list (Appendix A.1): "," and "\" within an ID are
		// escaped, then the whole is one quoted char-string.
		ids := make([]string, len(v.Alpn))
		for i, id := range v.Alpn {
			ids[i] = strings.NewReplacer(`\`, `\\`, `,`, `\,`).Replace(id)
		}
		return key + "=" + quote(strings.Join(ids, ","))
	case *dns.SVCBNoDefaultAlpn:
		return key
	case *dns.SVCBPort:
		return key + "=" + strconv.Itoa(int(v.Port))
	case *dns.SVCBIPv4Hint:
		return key + "=" + ipList(v.Hint)
	case *dns.SVCBIPv6Hint:
		return key + "=" + ipList(v.Hint)
	case *dns.SVCBECHConfig:
		return key + "=" + base64.StdEncoding.EncodeToString(v.ECH)
	case *dns.SVCBLocal:
		if len(v.Data) == 0 {
			return key
		}
		return key + "=" + quote(string(v.Data))
	}
	// Other known keys (dohpath, ohttp): miekg/dns escapes their value.
	if val := kv.String(); val != "" {
		return key + `="` + val + `"`
	}
	return key
}

func ipList(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}

// quote writes s as a quoted char-string (RFC 1035 §5.1): '"' and '\'
// escaped, bytes outside printable ASCII as \DDD.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c > 0x7e:
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
