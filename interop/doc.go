// Package interop tests the dialer's public API against independent
// servers: Apache httpd with mod_http2, HAProxy, nginx, h2o, Caddy, node's
// http2 module and the ngtcp2 example server, with curl as a reference
// client; the authoritative DNS server Knot (with kdig as the reference
// client) and the recursive resolver unbound over DNS over TLS and HTTPS;
// the proxies Squid (HTTP CONNECT) and Dante (SOCKS5). Our own test servers share libraries with the client, so a bug
// both share passes them; an independent server does not.
//
// Each test starts its server as a child process with a private
// configuration (conf/) under a temporary directory, on 127.0.0.1 and a
// free port, with a certificate from the test's own CA, and stops it by its
// process ID when the test ends. A WebSocket echo backend (Go, plain
// HTTP/1.1) started by the test stands behind the proxies. Names resolve
// only through the test's own DNS server; nothing leaves loopback.
//
// A test whose server is not installed skips and says so; .ci/run installs
// them from Debian's packages where it can. Each test logs one line per
// result,
//
//	INTEROP | peer | version | what | protocol | result
//
// from which interop/matrix.sh regenerates INTEROP.md at the repository
// root. serve.sh starts any of the servers by hand with the same
// configuration.
//
// The package has no non-test code.
package interop
