package dialer

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eyeballs/dialer/internal/hev3"
)

// echConfig encodes one ECHConfig (RFC 9849 §4) of version 0xfe0d with
// the given KEM, public key, cipher suites (KDF, AEAD pairs), public name
// and extension types (each with empty data).
func echConfig(kem uint16, pub []byte, suites [][2]uint16, name string, exts ...uint16) []byte {
	var c []byte
	c = append(c, 7) // config_id
	c = append(c, byte(kem>>8), byte(kem))
	c = append(c, byte(len(pub)>>8), byte(len(pub)))
	c = append(c, pub...)
	c = append(c, byte(len(suites)*4>>8), byte(len(suites)*4))
	for _, s := range suites {
		c = append(c, byte(s[0]>>8), byte(s[0]), byte(s[1]>>8), byte(s[1]))
	}
	c = append(c, 32, byte(len(name)))
	c = append(c, name...)
	c = append(c, byte(len(exts)*4>>8), byte(len(exts)*4))
	for _, e := range exts {
		c = append(c, byte(e>>8), byte(e), 0, 0)
	}
	return append([]byte{0xfe, 0x0d, byte(len(c) >> 8), byte(len(c))}, c...)
}

// echList wraps ECHConfigs into an ECHConfigList.
func echList(configs ...[]byte) []byte {
	var b []byte
	for _, c := range configs {
		b = append(b, c...)
	}
	return append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)
}

func x25519Pub(t *testing.T) []byte {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().Bytes()
}

var aes128 = [][2]uint16{{0x0001, 0x0001}} // HKDF-SHA256, AES-128-GCM

// TestCheckECHConfigList: retry configurations are parsed strictly
// (RFC 9849 §6.1.6: a malformed list is an error), bounded in size, and
// usable only when crypto/tls could use one of their configurations.
func TestCheckECHConfigList(t *testing.T) {
	pub := x25519Pub(t)
	good := echConfig(0x0020, pub, aes128, "public.example.test")
	unknownVersion := append([]byte{0xfe, 0x0c, 0, 3}, 1, 2, 3)
	for _, tc := range []struct {
		name    string
		list    []byte
		want    string
		wantErr bool
	}{
		{"usable", echList(good), "public.example.test", false},
		{"second usable", echList(echConfig(0x0020, pub, aes128, "1.2.3.4"), echConfig(0x0020, pub, aes128, "other.example.test")), "other.example.test", false},
		{"other version skipped", echList(unknownVersion, good), "public.example.test", false},
		{"only other versions", echList(unknownVersion), "", false},
		{"mandatory extension", echList(echConfig(0x0020, pub, aes128, "public.example.test", 0x8001)), "", false},
		{"optional extension", echList(echConfig(0x0020, pub, aes128, "public.example.test", 0x0001)), "public.example.test", false},
		{"unknown KEM", echList(echConfig(0x7777, pub, aes128, "public.example.test")), "", false},
		{"bad public key", echList(echConfig(0x0020, pub[:5], aes128, "public.example.test")), "", false},
		{"unknown suites", echList(echConfig(0x0020, pub, [][2]uint16{{0x0001, 0x7777}, {0x7777, 0x0001}}, "public.example.test")), "", false},
		{"second suite known", echList(echConfig(0x0020, pub, [][2]uint16{{0x0001, 0x7777}, {0x0001, 0x0003}}, "public.example.test")), "public.example.test", false},
		{"IPv4 public name", echList(echConfig(0x0020, pub, aes128, "192.0.2.1")), "", false},
		{"hex public name", echList(echConfig(0x0020, pub, aes128, "a.0x1F")), "", false},
		{"bad label", echList(echConfig(0x0020, pub, aes128, "a..b")), "", false},
		{"empty", []byte{0, 0}, "", true},
		{"nothing", nil, "", true},
		{"truncated", echList(good)[:len(good)], "", true},
		{"trailing bytes", append(echList(good), 0), "", true},
		{"length beyond contents", echList(append(good[:3:3], 0xff)), "", true},
		{"contents with trailing bytes", echList(append([]byte{0xfe, 0x0d, byte((len(good) - 3) >> 8), byte(len(good) - 3)}, append(append([]byte(nil), good[4:]...), 0)...)), "", true},
		{"no suites", echList(echConfig(0x0020, pub, nil, "public.example.test")), "", true},
		{"empty public name", echList(echConfig(0x0020, pub, aes128, "")), "", true},
		{"too large", echList(func() []byte {
			var b []byte
			for len(b) <= maxECHConfigList {
				b = append(b, good...)
			}
			return b
		}()), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkRetryConfigs(tc.list)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("checkRetryConfigs = %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestECHPolicy drives withECH with handshakes that fail as crypto/tls
// does (its own tests, and the integration tests, run the real thing):
// how many connections each outcome makes and what each one offers.
func TestECHPolicy(t *testing.T) {
	pub := x25519Pub(t)
	first := echList(echConfig(0x0020, pub, aes128, "public.example.test"))
	retryList := echList(echConfig(0x0020, x25519Pub(t), aes128, "retry.example.test"))
	unusable := echList(echConfig(0x0020, pub, aes128, "public.example.test", 0x8001))
	rejected := func(list []byte) error {
		return errors.Join(errors.New("CRYPTO_ERROR 0x179"), &tls.ECHRejectionError{RetryConfigList: list})
	}
	other := errors.New("connection reset")
	for _, tc := range []struct {
		name    string
		maxVer  uint16
		results []error // what each connection's handshake returns
		want    echResult
		offered []string // per connection: the public name offered, or "" for none
		errPart string
	}{
		{"accepted", 0, []error{nil}, echAccepted, []string{"public.example.test"}, ""},
		{"retried", 0, []error{rejected(retryList), nil}, echRetried, []string{"public.example.test", "retry.example.test"}, ""},
		{"disabled", 0, []error{rejected(nil), nil}, echDisabled, []string{"public.example.test", ""}, ""},
		{"unusable retry list disables", 0, []error{rejected(unusable), nil}, echDisabled, []string{"public.example.test", ""}, ""},
		{"malformed retry list", 0, []error{rejected([]byte{0, 9, 1})}, echRejected, []string{"public.example.test"}, "malformed retry configurations"},
		{"rejected twice", 0, []error{rejected(retryList), rejected(retryList)}, echRejected, []string{"public.example.test", "retry.example.test"}, "rejected ECH again"},
		{"disabled after retry configs", 0, []error{rejected(retryList), rejected(nil)}, echRejected, []string{"public.example.test", "retry.example.test"}, "rejected ECH again"},
		{"retry fails", 0, []error{rejected(nil), other}, echRejected, []string{"public.example.test", ""}, "retry without ECH failed"},
		{"other failure", 0, []error{other}, echNone, []string{"public.example.test"}, "connection reset"},
		{"TLS 1.2 only", tls.VersionTLS12, []error{nil}, echUnusable, []string{""}, ""},
		{"unusable record", 0, []error{nil}, echUnusable, []string{""}, ""},
		{"malformed record", 0, nil, echNone, nil, "ECH configuration list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list := first
			switch tc.name {
			case "unusable record":
				list = unusable
			case "malformed record":
				list = first[:len(first)-1]
			}
			conf := &tls.Config{ServerName: "origin.example.test", MinVersion: tls.VersionTLS12, MaxVersion: tc.maxVer, EncryptedClientHelloConfigList: list}
			var offered []string
			_, got, err := withECH(context.Background(), conf, func(_ context.Context, c *tls.Config) (int, error) {
				name := ""
				if c.EncryptedClientHelloConfigList != nil {
					name, _ = parseECHConfigList(c.EncryptedClientHelloConfigList)
					if c.MinVersion != tls.VersionTLS13 {
						t.Errorf("offering ECH with MinVersion %x", c.MinVersion)
					}
				} else if c.MinVersion != tls.VersionTLS12 {
					t.Errorf("without ECH, MinVersion %x; want the caller's", c.MinVersion)
				}
				if c.ServerName != "origin.example.test" {
					t.Errorf("ServerName %q", c.ServerName)
				}
				offered = append(offered, name)
				if len(offered) > len(tc.results) {
					t.Fatalf("connection %d; want at most %d", len(offered), len(tc.results))
				}
				return 1, tc.results[len(offered)-1]
			})
			if got != tc.want || strings.Join(offered, ",") != strings.Join(tc.offered, ",") {
				t.Errorf("result %q after connections offering %q; want %q after %q", got, offered, tc.want, tc.offered)
			}
			if tc.errPart == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Fatalf("error %v; want one saying %q", err, tc.errPart)
			}
			var ee *ECHError
			if errors.As(err, &ee) != (tc.want == echRejected) {
				t.Errorf("error %v: *ECHError %v; want it when rejected", err, ee != nil)
			}
			if conf.MinVersion != tls.VersionTLS12 || !bytesEqual(conf.EncryptedClientHelloConfigList, list) {
				t.Error("the caller's configuration changed")
			}
		})
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// TestECHRetryRTT: a QUIC handshake that took an ECH retry is two
// handshakes, not an RTT sample; one with ECH accepted is one.
func TestECHRetryRTT(t *testing.T) {
	for _, tc := range []struct {
		ech  echResult
		want time.Duration
	}{{echNone, 30 * time.Millisecond}, {echAccepted, 30 * time.Millisecond}, {echRetried, 0}, {echDisabled, 0}} {
		a := attemptResult{proto: hev3.ProtoH3, start: 10 * time.Millisecond, connected: true, connectedAt: 40 * time.Millisecond, version: hev3.H3, ech: tc.ech}
		if got := a.rttSample(); got != tc.want {
			t.Errorf("ECH %q: RTT sample %v; want %v", tc.ech, got, tc.want)
		}
	}
}

// TestECHErrorHeard: an attempt that failed with an ECHError heard from
// the server (its handshake got as far as a rejection), so its path is
// not learned as silent.
func TestECHErrorHeard(t *testing.T) {
	rej := &tls.ECHRejectionError{RetryConfigList: []byte{0, 4, 1, 2, 3, 4}}
	for _, err := range []error{
		&ECHError{What: "server rejected ECH again on the retry with its own retry configurations", Retried: true, Err: rej},
		&ECHError{What: "server disabled ECH, then the retry without ECH failed", Retried: true, Err: context.DeadlineExceeded},
	} {
		a := attemptResult{proto: hev3.ProtoH3, start: 0, end: time.Second, outcome: outcomeFailed, err: err}
		if !a.heard() {
			t.Errorf("%v: not heard from the server", err)
		}
	}
}

// FuzzECHConfigList: any bytes a server sends as retry configurations
// parse without panicking, and a list that passes holds what it claims.
func FuzzECHConfigList(f *testing.F) {
	f.Add(echList(echConfig(0x0020, make([]byte, 32), aes128, "public.example.test")))
	f.Add(echList(echConfig(0x0010, make([]byte, 65), aes128, "a.b", 0x8001)))
	f.Add([]byte{0, 4, 0xfe, 0x0c, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, err := checkRetryConfigs(b)
		if err != nil && name != "" {
			t.Fatalf("error %v with public name %q", err, name)
		}
		if name != "" && (!validPublicName(name) || len(b) > maxECHConfigList) {
			t.Fatalf("usable public name %q from %d bytes", name, len(b))
		}
	})
}
