package dialer

import (
	"context"
	"crypto/hpke"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Encrypted Client Hello (ECH, RFC 9849) on one attempt, TCP+TLS or QUIC
// alike: the attempt offers the ECHConfigList of the endpoint's HTTPS
// record (RFC 9849 §6.1; RFC 9848), and when the server rejects it,
// follows §6.1.6 as Chromium and Firefox do:
//
//   - rejected with retry configurations (the server authenticated for the
//     configuration's public name, §6.1.7, and sent a well-formed
//     "retry_configs" list holding a configuration we can use): one retry,
//     on a fresh connection to the same endpoint, with that list;
//   - rejected without them (no "retry_configs", or none usable: ECH is
//     securely disabled, again only after the server authenticated for the
//     public name): one retry on a fresh connection without ECH;
//   - anything else, including a rejection whose server did not
//     authenticate for the public name, malformed retry configurations,
//     and any rejection of the retry: an *ECHError.
//
// The origin's name is sent in clear only on the retry that a securely
// disabled rejection allows, and when the record's ECHConfigList holds no
// configuration crypto/tls can use (§4: an unknown version, KEM or
// mandatory extension; "unusable" in the Report), where Chromium too
// offers no ECH (it sends GREASE ECH). A list that does not parse fails
// the attempt.
//
// At most one retry per attempt (§6.1.6: "Clients SHOULD NOT accept
// retry_config in response to a connection initiated in response to a
// retry_config"; Chromium fails any second rejection, also one that would
// securely disable ECH, and so do we).

// maxECHConfigList bounds the retry configurations a server may make us
// parse and use: an ECHConfig is under 200 bytes with any KEM crypto/tls
// offers but the post-quantum hybrids (about 1.3 KiB), so 8 KiB holds
// several of each; the TLS extension itself could carry 64 KiB.
const maxECHConfigList = 8 << 10

// echConfigVersion is the ECHConfig version RFC 9849 §4 defines (the
// encrypted_client_hello extension's code point).
const echConfigVersion = 0xfe0d

// An echResult says what ECH did on an attempt's connection.
type echResult uint8

const (
	echNone     echResult = iota // not offered (no ECH configuration), or the attempt failed before ECH mattered
	echAccepted                  // accepted on the first connection
	echRetried                   // rejected with retry configurations, accepted on the retry
	echDisabled                  // securely disabled by the server: the retry went without ECH
	echRejected                  // rejected, and the attempt failed (an *ECHError)
	echUnusable                  // not offered: the record's configurations hold none we can use, or TLS 1.3 is off
)

// String returns the result as Attempt.ECHResult shows it.
func (r echResult) String() string {
	switch r {
	case echAccepted:
		return "accepted"
	case echRetried:
		return "retried"
	case echDisabled:
		return "disabled"
	case echRejected:
		return "rejected"
	case echUnusable:
		return "unusable"
	}
	return ""
}

// An ECHError is the error of an attempt whose server did not accept
// Encrypted Client Hello (RFC 9849) where the dialer could not go on as
// the ECH rules allow: the server did not authenticate for the
// configuration's public name, sent malformed retry configurations, or
// rejected ECH again on the one retry; or the retry failed. The dialer
// never falls back to sending the name in clear in these cases. Err is the
// cause: a *tls.ECHRejectionError, a certificate error, or the retry's
// error.
type ECHError struct {
	// PublicName is the public name of the ECH configuration offered, the
	// name a server that rejects ECH must authenticate for, when known.
	PublicName string
	// Retried reports whether a retry was made after a first rejection
	// (with the server's retry configurations, or without ECH).
	Retried bool
	// What says in a few words what went wrong.
	What string
	Err  error
}

func (e *ECHError) Error() string {
	s := "ECH: " + e.What
	if e.PublicName != "" {
		s += fmt.Sprintf(" (public name %q)", e.PublicName)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause, so that errors.As reaches a
// *tls.ECHRejectionError or a *tls.CertificateVerificationError.
func (e *ECHError) Unwrap() error { return e.Err }

// withECH runs an attempt's handshake under the rules above. handshake
// opens a fresh connection to the attempt's endpoint and completes the TLS
// (or QUIC) handshake with the configuration it is given; it closes its
// connection when it fails. conf is the attempt's configuration (with its
// ServerName set); without an ECHConfigList, handshake runs once, as it is.
//
// crypto/tls completes a handshake that offered ECH only when ECH was
// accepted (ConnectionState.ECHAccepted). When the server rejects it, Go
// verifies the certificate for the public name itself (§6.1.7) and returns
// a *tls.ECHRejectionError only once that and the rest of the handshake
// succeeded, with the server's retry configurations (§6.1.6). We leave that
// check to Go: its EncryptedClientHelloRejectionVerify hook, the only way
// to see a rejection before it, gets a ConnectionState without the peer's
// certificates (Go 1.26), so it cannot verify anything.
func withECH[C any](ctx context.Context, conf *tls.Config, handshake func(context.Context, *tls.Config) (C, error)) (C, echResult, error) {
	var zero C
	if len(conf.EncryptedClientHelloConfigList) == 0 {
		c, err := handshake(ctx, conf)
		return c, echNone, err
	}
	publicName, err := parseECHConfigList(conf.EncryptedClientHelloConfigList)
	switch {
	case err != nil:
		// As Chromium: a list that does not parse fails the attempt.
		return zero, echNone, fmt.Errorf("ECH: the HTTPS record's ECH configuration list: %w", err)
	case publicName == "" || conf.MaxVersion != 0 && conf.MaxVersion < tls.VersionTLS13:
		// §4: configurations of versions, KEMs or mandatory extensions
		// the client does not know are ignored; with none left ECH is
		// not offered (Chromium sends GREASE ECH, which Go cannot). ECH
		// needs TLS 1.3 (§6.1): a configuration capped below it offers
		// none, as Chromium does when TLS 1.3 is off.
		conf = conf.Clone()
		conf.EncryptedClientHelloConfigList = nil
		c, err := handshake(ctx, conf)
		return c, echUnusable, err
	}
	c, err := handshake(ctx, offerECH(conf, conf.EncryptedClientHelloConfigList))
	if err == nil {
		return c, echAccepted, nil
	}
	var rej *tls.ECHRejectionError
	switch {
	case failedPublicName(err, publicName, conf.ServerName):
		return zero, echRejected, &ECHError{PublicName: publicName, What: notAuthenticated, Err: err}
	case !errors.As(err, &rej):
		// The handshake failed before ECH made a difference: a refused
		// port, a timeout, the origin's own certificate.
		return zero, echNone, err
	}
	retry, result := conf.Clone(), echDisabled
	retry.EncryptedClientHelloConfigList = nil
	if len(rej.RetryConfigList) > 0 {
		name, perr := checkRetryConfigs(rej.RetryConfigList)
		if perr != nil {
			// §6.1.6: the client "MUST check that it is syntactically
			// valid and the client MUST abort the connection with a
			// decode_error alert otherwise".
			return zero, echRejected, &ECHError{PublicName: publicName, What: "server rejected ECH and sent malformed retry configurations", Err: perr}
		}
		// §6.1.6: retry configurations none of which we can use disable
		// ECH securely, as an absent list does.
		if name != "" {
			retry, result = offerECH(retry, rej.RetryConfigList), echRetried
			publicName = name
		}
	}
	c, err = handshake(ctx, retry)
	if err == nil {
		return c, result, nil
	}
	if ctx.Err() != nil {
		// The attempt was called off during the retry (another won, or
		// the dial's time ran out): not something ECH did.
		return zero, echNone, err
	}
	e := &ECHError{PublicName: publicName, Retried: true, Err: err}
	switch {
	case result == echRetried && failedPublicName(err, publicName, conf.ServerName):
		e.What = notAuthenticated + " on the retry with its retry configurations"
	case errors.As(err, &rej):
		e.What = "server rejected ECH again on the retry with its own retry configurations"
	case result == echRetried:
		e.What = "server rejected ECH, then the retry with its retry configurations failed"
	default:
		e.What = "server disabled ECH, then the retry without ECH failed"
	}
	return zero, echRejected, e
}

// offerECH returns conf offering ECH with list. It raises MinVersion to
// TLS 1.3, which ECH implies (RFC 9849 §6.1: the ClientHelloInner offers
// TLS 1.3 or later) and crypto/tls requires with ECH: a configuration
// that allows TLS 1.2 (as many do) still allows it on the retry without
// ECH.
func offerECH(conf *tls.Config, list []byte) *tls.Config {
	conf = conf.Clone()
	conf.EncryptedClientHelloConfigList = list
	conf.MinVersion = max(conf.MinVersion, tls.VersionTLS13)
	return conf
}

// notAuthenticated says that a server rejected ECH without authenticating
// for the public name.
const notAuthenticated = "server rejected ECH and did not authenticate for the public name (RFC 9849 §6.1.7)"

// failedPublicName reports whether err is crypto/tls's check of the
// certificate for the public name of a handshake whose ECH the server
// rejected (RFC 9849 §6.1.7), rather than for serverName of one it
// accepted. A hostname error names the name checked; x509 checks the name
// before the chain, so any other error of a leaf valid for the public name
// and not for serverName was the public name's.
func failedPublicName(err error, publicName, serverName string) bool {
	var cv *tls.CertificateVerificationError
	if publicName == "" || !errors.As(err, &cv) || len(cv.UnverifiedCertificates) == 0 {
		return false
	}
	var host x509.HostnameError
	if errors.As(cv.Err, &host) {
		return host.Host == publicName
	}
	leaf := cv.UnverifiedCertificates[0]
	return leaf.VerifyHostname(publicName) == nil && leaf.VerifyHostname(serverName) != nil
}

// checkRetryConfigs parses a server's retry configurations
// (parseECHConfigList) within the bound of maxECHConfigList.
func checkRetryConfigs(list []byte) (publicName string, err error) {
	if len(list) > maxECHConfigList {
		return "", fmt.Errorf("ECHConfigList of %d bytes, more than the %d accepted", len(list), maxECHConfigList)
	}
	return parseECHConfigList(list)
}

// parseECHConfigList parses an ECHConfigList (RFC 9849 §4) and returns
// the public name of the first configuration crypto/tls can use (the one
// it offers), or "" if there is none. Usable means, as Go's client picks
// one: version 0xfe0d, a KEM, KDF and AEAD it implements, a public key
// that parses, a valid public name (§6.1.7) and no mandatory extension
// (§4.2). A list that does not parse is an error; configurations of other
// versions are skipped, as §4 says.
func parseECHConfigList(b []byte) (publicName string, err error) {
	r := byteReader(b)
	list, ok := r.vec16()
	if !ok || len(r) != 0 || len(list) < 4 {
		return "", errors.New("malformed ECHConfigList")
	}
	for len(list) > 0 {
		version, ok1 := list.u16()
		contents, ok2 := list.vec16()
		if !ok1 || !ok2 {
			return "", errors.New("malformed ECHConfig")
		}
		if version != echConfigVersion {
			continue
		}
		name, err := usableECHConfig(contents)
		if err != nil {
			return "", err
		}
		if publicName == "" {
			publicName = name
		}
	}
	return publicName, nil
}

// usableECHConfig parses ECHConfigContents (RFC 9849 §4) and returns its
// public name if crypto/tls can use it, or "".
func usableECHConfig(r byteReader) (string, error) {
	_, ok1 := r.u8() // config_id
	kemID, ok2 := r.u16()
	pub, ok3 := r.vec16()
	suites, ok4 := r.vec16()
	_, ok5 := r.u8() // maximum_name_length
	name, ok6 := r.vec8()
	exts, ok7 := r.vec16()
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || !ok7 || len(r) != 0 ||
		len(pub) == 0 || len(suites) < 4 || len(suites)%4 != 0 || len(name) == 0 {
		return "", errors.New("malformed ECHConfigContents")
	}
	mandatory := false
	for len(exts) > 0 {
		typ, ok1 := exts.u16()
		_, ok2 := exts.vec16()
		if !ok1 || !ok2 {
			return "", errors.New("malformed ECHConfig extension")
		}
		// §4.2: the high-order bit marks a mandatory extension; we
		// know none.
		mandatory = mandatory || typ&0x8000 != 0
	}
	if mandatory || !validPublicName(string(name)) {
		return "", nil
	}
	kem, err := hpke.NewKEM(kemID)
	if err != nil {
		return "", nil
	}
	if _, err := kem.NewPublicKey(pub); err != nil {
		return "", nil
	}
	for len(suites) > 0 {
		kdf, _ := suites.u16()
		aead, _ := suites.u16()
		_, kerr := hpke.NewKDF(kdf)
		_, aerr := hpke.NewAEAD(aead)
		if kerr == nil && aerr == nil {
			return string(name), nil
		}
	}
	return "", nil
}

// validPublicName reports whether name is a host name in preferred name
// syntax that cannot be read as an IPv4 address (RFC 9849 §6.1.7).
func validPublicName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return false
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') && strings.Trim(last[2:], "0123456789abcdefABCDEF") == "" {
		return false
	}
	return true
}

// A byteReader reads the TLS presentation language's integers and
// length-prefixed vectors (RFC 8446 §3), shrinking as it goes.
type byteReader []byte

func (r *byteReader) u8() (uint8, bool) {
	if len(*r) < 1 {
		return 0, false
	}
	v := (*r)[0]
	*r = (*r)[1:]
	return v, true
}

func (r *byteReader) u16() (uint16, bool) {
	if len(*r) < 2 {
		return 0, false
	}
	v := uint16((*r)[0])<<8 | uint16((*r)[1])
	*r = (*r)[2:]
	return v, true
}

func (r *byteReader) vec(n int) (byteReader, bool) {
	if len(*r) < n {
		return nil, false
	}
	v := (*r)[:n]
	*r = (*r)[n:]
	return v, true
}

func (r *byteReader) vec8() (byteReader, bool) {
	n, ok := r.u8()
	if !ok {
		return nil, false
	}
	return r.vec(int(n))
}

func (r *byteReader) vec16() (byteReader, bool) {
	n, ok := r.u16()
	if !ok {
		return nil, false
	}
	return r.vec(int(n))
}
