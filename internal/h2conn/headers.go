package h2conn

import (
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/net/http2/hpack"
)

// connectionSpecific are the header fields HTTP/2 forbids (RFC 9113
// section 8.2.2).
var connectionSpecific = map[string]bool{
	"connection":        true,
	"keep-alive":        true,
	"proxy-connection":  true,
	"transfer-encoding": true,
	"upgrade":           true,
}

// checkRegular reports a connection-specific field, which makes a message
// malformed.
func checkRegular(fields []hpack.HeaderField) error {
	for _, f := range fields {
		if f.IsPseudo() {
			continue
		}
		if connectionSpecific[f.Name] || (f.Name == "te" && f.Value != "trailers") {
			return fmt.Errorf("connection-specific header field %q", f.Name)
		}
	}
	return nil
}

// checkRequest checks a request's pseudo-header fields (RFC 9113 section
// 8.3.1, RFC 8441 section 4); extConnect is whether we advertised
// SETTINGS_ENABLE_CONNECT_PROTOCOL=1. The Framer has already rejected
// unknown, duplicate and misplaced pseudo-header fields.
func checkRequest(fields []hpack.HeaderField, extConnect bool) error {
	p := map[string]string{}
	for _, f := range fields {
		if !f.IsPseudo() {
			break
		}
		p[f.Name] = f.Value
	}
	if _, ok := p[":status"]; ok {
		return errors.New(":status in a request")
	}
	method, ok := p[":method"]
	if !ok || method == "" {
		return errors.New("no :method")
	}
	_, hasScheme := p[":scheme"]
	_, hasPath := p[":path"]
	_, hasProto := p[":protocol"]
	switch {
	case hasProto:
		if method != "CONNECT" || !extConnect {
			return errors.New(":protocol without extended CONNECT")
		}
		if !hasScheme || p[":path"] == "" || p[":authority"] == "" {
			return errors.New("extended CONNECT needs :scheme, :path and :authority")
		}
	case method == "CONNECT":
		if hasScheme || hasPath || p[":authority"] == "" {
			return errors.New("CONNECT needs :authority only")
		}
	default:
		if !hasScheme || p[":path"] == "" {
			return errors.New("request needs :scheme and :path")
		}
	}
	return checkRegular(fields)
}

// checkResponse checks a response's pseudo-header fields and returns its
// status code.
func checkResponse(fields []hpack.HeaderField) (int, error) {
	status := -1
	for _, f := range fields {
		if !f.IsPseudo() {
			break
		}
		if f.Name != ":status" {
			return 0, fmt.Errorf("%s in a response", f.Name)
		}
		n, err := strconv.Atoi(f.Value)
		if err != nil || len(f.Value) != 3 || n < 100 {
			return 0, fmt.Errorf("bad :status %q", f.Value)
		}
		status = n
	}
	if status < 0 {
		return 0, errors.New("no :status")
	}
	return status, checkRegular(fields)
}
