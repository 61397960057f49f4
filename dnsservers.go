package dialer

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/eyeballs/dialer/internal/resolver"
)

// Encrypted nameservers (WithNameservers):
//
//	tls://NAME[:PORT]             DNS over TLS, RFC 7858 (port 853)
//	https://NAME[:PORT]/PATH      DNS over HTTPS, RFC 8484 (port 443,
//	                              path /dns-query when empty)
//
// NAME is a DNS name or an IP literal. The server's certificate is verified
// for NAME (an IP literal against its IP addresses) with WithTLSConfig's
// RootCAs, or the system's roots when it has none; nothing else of that
// configuration is used (no client certificate goes to a resolver).
//
// NAME itself is found without asking the encrypted servers (no loop): an
// IP literal, the hosts file, or the plaintext servers of the same list;
// when the list has none, the system's configuration (resolv.conf). When the
// list has an encrypted server, queries go only to the encrypted ones, in
// order: a failing encrypted server never falls back to plaintext.
// DoH requests go through the package's own Transport (raced, pooled HTTP/2
// and HTTP/3 connections), directly, never through a proxy.

// Default ports of encrypted DNS.
const (
	dotPort = "853" // RFC 7858 §3.1
	dohPort = "443" // RFC 8484 §3 (an https URI)
)

// encServer is one encrypted nameserver of WithNameservers.
type encServer struct {
	scheme string // "tls" or "https"
	host   string // a name or an IP literal, no brackets
	port   string
	url    string // https: the URL requests go to
}

// isEncrypted reports whether s names an encrypted nameserver (or a scheme
// that is not supported).
func isEncrypted(s string) bool { return strings.Contains(s, "://") }

// parseNameservers splits WithNameservers' list into plaintext servers
// ("ip:port") and encrypted ones.
func parseNameservers(list []string) (plain []string, enc []encServer, err error) {
	for _, s := range list {
		if !isEncrypted(s) {
			plain = append(plain, s)
			continue
		}
		e, err := parseEncServer(s)
		if err != nil {
			return nil, nil, err
		}
		enc = append(enc, e)
	}
	return plain, enc, nil
}

// parseEncServer parses "tls://NAME[:PORT]" or "https://NAME[:PORT]/PATH".
func parseEncServer(s string) (encServer, error) {
	bad := func(why string) (encServer, error) {
		return encServer{}, fmt.Errorf("nameserver %q: %s", s, why)
	}
	// An RFC 8484 URI template's variable ("{?dns}") is where GET puts
	// the query; POST does without it.
	u, err := url.Parse(strings.TrimSuffix(s, "{?dns}"))
	if err != nil {
		return bad(err.Error())
	}
	e := encServer{scheme: u.Scheme}
	switch u.Scheme {
	case "tls":
		e.port = dotPort
		if u.Path != "" || u.RawQuery != "" {
			return bad("tls:// takes no path or query")
		}
	case "https":
		e.port = dohPort
	default:
		return bad("scheme is not tls:// (DNS over TLS) or https:// (DNS over HTTPS)")
	}
	if u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return bad("user information, fragments and opaque URLs are not allowed")
	}
	e.host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return bad("invalid port")
		}
		e.port = p
	}
	if err := checkHost(e.host); err != nil {
		return bad(err.Error())
	}
	if e.scheme == "https" {
		if u.Path == "" || u.Path == "/" {
			u.Path = "/dns-query"
		}
		u.Host = net.JoinHostPort(e.host, e.port)
		e.url = u.String()
	}
	return e, nil
}

// resolverKey keys a Dialer's name sources: by nameservers, hosts file
// and resolv.conf, and by encryptedKey.
func resolverKey(cfg config) string {
	return strings.Join(cfg.nameservers, ",") + "|" + cfg.hostsFile + "|" + cfg.resolvConf + encryptedKey(cfg)
}

// encryptedKey is what a resolver's key needs beyond its settings when a
// nameserver is encrypted: the roots that verify it, so that a per-call
// WithTLSConfig with other roots never uses a connection (or an answer)
// verified under the Dialer's. "" otherwise.
func encryptedKey(cfg config) string {
	for _, s := range cfg.nameservers {
		if isEncrypted(s) {
			if cfg.tls != nil && cfg.tls.RootCAs != nil {
				// The resolver keeps the pool alive, so its address
				// is not reused while the key is in use.
				return fmt.Sprintf("|roots %p", cfg.tls.RootCAs)
			}
			return ""
		}
	}
	return ""
}

// resolverConfig returns the resolver configuration for cfg's nameservers
// and hosts file: the plaintext servers, and the encrypted ones as
// Upstreams, reached through a bootstrap Dialer.
func resolverConfig(cfg config) (resolver.Config, error) {
	plain, enc, err := parseNameservers(cfg.nameservers)
	if err != nil {
		return resolver.Config{}, err
	}
	rc := resolver.Config{Servers: plain, HostsFile: cfg.hostsFile}
	if len(enc) == 0 {
		return rc, nil
	}
	// The bootstrap Dialer finds and reaches the encrypted servers: its
	// resolver has only the plaintext servers and the hosts file.
	var roots tls.Config
	if cfg.tls != nil {
		roots.RootCAs = cfg.tls.RootCAs
	}
	direct := func(*http.Request) (*url.URL, error) { return nil, nil }
	boot := New(WithNameservers(plain...), WithHostsFile(cfg.hostsFile), WithTLSConfig(&roots), WithProxy(direct))
	for _, e := range enc {
		hostport := net.JoinHostPort(e.host, e.port)
		switch e.scheme {
		case "tls":
			conf := &tls.Config{ServerName: e.host, RootCAs: roots.RootCAs, MinVersion: tls.VersionTLS12}
			dot := resolver.NewDoT(resolver.DoTConfig{
				Name: hostport,
				Dial: func(ctx context.Context) (net.Conn, error) { return boot.DialContext(ctx, "tcp", hostport) },
				TLS:  conf,
			})
			rc.Upstreams = append(rc.Upstreams, bootServer{dot, boot})
		case "https":
			doh := resolver.NewDoH(resolver.DoHConfig{URL: e.url, Transport: boot.Transport()})
			rc.Upstreams = append(rc.Upstreams, bootServer{doh, boot})
		}
	}
	return rc, nil
}

// bootServer is an encrypted server whose idle connections close with its
// bootstrap Dialer's (and that Dialer's lingering queries).
type bootServer struct {
	resolver.Server
	boot *Dialer
}

func (s bootServer) CloseIdle() {
	s.Server.CloseIdle()
	s.boot.CloseIdleConnections()
}
