package dialer

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"hash"
	"io"
	"net"
	"reflect"
	"strconv"
	"weak"
)

// A trust names everything that decides whom a connection verified its
// server as, whom it presented itself as, and where its addresses came
// from: the effective TLS configuration (roots, client certificates,
// ServerName, verification callbacks, versions, ECH, session cache) and the
// resolver settings (nameservers, hosts file). What a Dialer reuses is
// partitioned by trust: pooled connections, the flights that share a race,
// the capability cache and Alt-Svc memory (caps). A dial never rides on a
// connection, or on what was learned, under another trust.
//
// Values of the configuration are compared by content; references that
// cannot be (callbacks, a session cache, a key log writer, a random
// source) make the configuration compare by identity instead, and the
// root pool compares by identity. Identities are weak pointers: a
// configuration that is garbage collected never matches a new one that
// happens to reuse its address.
//
// The proxy a dial goes through (WithProxy) is part of its trust (see
// via): a connection tunnelled through a proxy is never reused by a
// direct dial, nor by a dial through another proxy or with other proxy
// credentials, nor the other way round.
type trust struct {
	sum   [sha256.Size]byte
	conf  weak.Pointer[tls.Config]    // set when the configuration compares by identity
	roots weak.Pointer[x509.CertPool] // set when RootCAs is
	cas   weak.Pointer[x509.CertPool] // set when ClientCAs is
}

// trust computes c's trust.
func (c config) trust() trust {
	var t trust
	h := sha256.New()
	writeField(h, "hosts", c.hostsFile)
	writeField(h, "nameservers", strconv.Itoa(len(c.nameservers)))
	for _, s := range c.nameservers {
		writeField(h, "nameserver", s)
	}
	conf := c.tls
	if conf == nil {
		conf = &tls.Config{} // what tlsConfig uses: the system roots
	}
	hashTLS(h, conf, &t)
	h.Sum(t.sum[:0])
	return t
}

// hashTLS writes conf's exported fields to h, field by field, so that a
// field added to tls.Config in a later Go release partitions too: data
// (booleans, numbers, strings and slices or arrays of them) by value,
// Certificates by their DER chains, the root pools by identity, and
// anything else set (a callback, an interface, a map) makes the whole
// configuration compare by identity.
func hashTLS(h hash.Hash, conf *tls.Config, t *trust) {
	v := reflect.ValueOf(conf).Elem()
	typ := v.Type()
	byIdentity := false
	for i := range typ.NumField() {
		f := typ.Field(i)
		fv := v.Field(i)
		if !f.IsExported() || fv.IsZero() {
			continue
		}
		switch f.Name {
		case "NextProtos":
			continue // set by the dialer for each attempt
		case "Certificates":
			for _, cert := range conf.Certificates {
				writeField(h, "certificate", strconv.Itoa(len(cert.Certificate)))
				for _, der := range cert.Certificate {
					writeHeader(h, "der", len(der))
					h.Write(der)
				}
			}
			continue
		case "RootCAs":
			t.roots = weak.Make(conf.RootCAs)
			continue
		case "ClientCAs":
			t.cas = weak.Make(conf.ClientCAs)
			continue
		}
		if !isData(fv.Type()) {
			byIdentity = true
			continue
		}
		writeField(h, f.Name, fmt.Sprintf("%#v", fv.Interface()))
	}
	if byIdentity {
		t.conf = weak.Make(conf)
	}
}

// isData reports whether values of typ compare by content: booleans,
// numbers, strings, and arrays or slices of them.
func isData(typ reflect.Type) bool {
	switch typ.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	case reflect.Array, reflect.Slice:
		return isData(typ.Elem())
	}
	return false
}

// writeField writes a name and a value to h, each prefixed by its length,
// so that no two different sequences of fields hash alike.
func writeField(h hash.Hash, name, value string) {
	writeHeader(h, name, len(value))
	io.WriteString(h, value)
}

// writeHeader writes a field's name and the length of the value that
// follows it.
func writeHeader(h hash.Hash, name string, n int) {
	var buf [64]byte
	b := strconv.AppendInt(buf[:0], int64(len(name)), 10)
	b = append(append(b, ':'), name...)
	b = strconv.AppendInt(b, int64(n), 10)
	h.Write(append(b, ':'))
}

// A poolKey names an origin (host and port) under one trust: the key of
// the Dialer's pool, flights and capability cache.
type poolKey struct {
	trust  trust
	origin string // "host:port"
}

// originKey returns the key of origin host:port under trust t.
func originKey(t trust, host string, port uint16) poolKey {
	return poolKey{trust: t, origin: net.JoinHostPort(host, strconv.Itoa(int(port)))}
}

// via returns t for dials through hop: the proxy URL, credentials
// included, is hashed into it, so that what was learned or pooled through
// one proxy stays with it. A nil hop (a direct dial) leaves t as it is.
func (t trust) via(hop *proxyHop) trust {
	if hop == nil {
		return t
	}
	h := sha256.New()
	h.Write(t.sum[:])
	writeField(h, "proxy", hop.u.String())
	h.Sum(t.sum[:0])
	return t
}
