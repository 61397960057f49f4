package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ednsSize is the EDNS0 UDP payload size advertised (DNS flag day 2020).
const ednsSize = 1232

// A Server carries DNS queries to one server and brings back its replies:
// DNS over TLS (DoT, RFC 7858) or DNS over HTTPS (DoH, RFC 8484), or
// another transport. Config.Upstreams lists them.
type Server interface {
	// Exchange sends m and returns the reply, whose ID and question
	// match m's. It returns when ctx ends; the Resolver bounds each call
	// by its Timeout.
	Exchange(ctx context.Context, m *dns.Msg) (*dns.Msg, error)
	// CloseIdle closes the connections kept for reuse that carry no
	// query.
	CloseIdle()
	// String names the server in errors, e.g. "tls://dns.example:853".
	String() string
}

// CloseIdle closes the connections to encrypted servers (Config.Upstreams)
// that carry no query; the next query opens a new one.
func (r *Resolver) CloseIdle() {
	for _, s := range r.upstreams {
		s.CloseIdle()
	}
}

// query asks the servers in order for name and qtype and returns the first
// reply with rcode NOERROR or NXDOMAIN, and the server that sent it. A
// truncated UDP reply is retried over TCP with the same server. When the
// Resolver has Upstreams, only they are asked: an encrypted server that
// fails never falls back to plaintext.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, string, error) {
	t := recordType(qtype)
	release, err := r.one(ctx)
	if err != nil {
		return nil, "", &Error{Name: name, Type: t, Err: err}
	}
	defer release()
	var errs []error
	plain := r.order() // options attempts and rotate
	n := len(plain)
	if len(r.upstreams) > 0 {
		n = len(r.upstreams)
	}
	for i := range n {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype) // sets RD
		m.SetEdns0(ednsSize, false)
		m.AuthenticatedData = r.trustAD
		var (
			srv  string
			resp *dns.Msg
			err  error
		)
		if len(r.upstreams) > 0 {
			srv = r.upstreams[i].String()
			resp, err = r.ask(ctx, r.upstreams[i], m)
		} else {
			srv = plain[i]
			resp, err = r.exchange(ctx, srv, m, r.network())
			if err == nil && resp.Truncated {
				m.Id = dns.Id()
				resp, err = r.exchange(ctx, srv, m, "tcp")
			}
		}
		if err == nil {
			switch resp.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return resp, srv, nil
			case dns.RcodeServerFailure:
				err = ErrServFail
			case dns.RcodeRefused:
				err = ErrRefused
			default:
				err = fmt.Errorf("%w %s", ErrRcode, rcodeString(resp.Rcode))
			}
		}
		e := &Error{Name: name, Type: t, Server: srv, Err: err}
		if ctx.Err() != nil {
			return nil, "", e
		}
		errs = append(errs, e)
	}
	if len(errs) == 1 {
		return nil, "", errs[0]
	}
	return nil, "", errors.Join(errs...)
}

func rcodeString(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rcode)
}

// exchange sends m to server over network ("udp" or "tcp") and reads the
// reply, within r.timeout and ctx.
//
// Over UDP, replies that cannot be parsed or do not match the query are
// ignored, as they may be forged (like Go's resolver, golang.org/issue/13281);
// if no good reply comes in time, the error says what was ignored. Over
// TCP such a reply is an error at once.
func (r *Resolver) exchange(ctx context.Context, server string, m *dns.Msg, network string) (*dns.Msg, error) {
	packed, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing query: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	conn, err := r.dialer.DialContext(actx, network, server)
	if err != nil {
		return nil, r.ioError(ctx, actx, network, err, nil)
	}
	defer conn.Close()
	// Unblock reads and writes as soon as the attempt's context ends.
	stop := context.AfterFunc(actx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if network == "udp" {
		if _, err := conn.Write(packed); err != nil {
			return nil, r.ioError(ctx, actx, network, err, nil)
		}
		buf := make([]byte, dns.MaxMsgSize)
		var ignored error
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return nil, r.ioError(ctx, actx, network, err, ignored)
			}
			resp, err := unpack(buf[:n])
			if err == nil {
				err = check(m, resp)
			}
			if err != nil {
				ignored = fmt.Errorf("%w: %w", ErrMalformed, err)
				continue
			}
			return resp, nil
		}
	}

	msg := make([]byte, 2+len(packed))
	binary.BigEndian.PutUint16(msg, uint16(len(packed)))
	copy(msg[2:], packed)
	if _, err := conn.Write(msg); err != nil {
		return nil, r.ioError(ctx, actx, network, err, nil)
	}
	var hdr [2]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, r.ioError(ctx, actx, network, err, nil)
	}
	buf := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, r.ioError(ctx, actx, network, err, nil)
	}
	resp, err := unpack(buf)
	if err == nil {
		err = check(m, resp)
	}
	if err == nil && resp.Truncated {
		err = errors.New("TC bit set")
	}
	if err != nil {
		return nil, fmt.Errorf("%w over tcp: %w", ErrMalformed, err)
	}
	return resp, nil
}

// ask sends m to an encrypted server within r.timeout and ctx. Its reply
// is checked again, as a Server from outside this package may not.
func (r *Resolver) ask(ctx context.Context, srv Server, m *dns.Msg) (*dns.Msg, error) {
	actx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	resp, err := srv.Exchange(actx, m)
	if err != nil {
		return nil, r.ioError(ctx, actx, srv.String(), err, nil)
	}
	if err := check(m, resp); err != nil {
		return nil, fmt.Errorf("%w from %s: %w", ErrMalformed, srv, err)
	}
	if resp.Truncated {
		// A stream transport carries a whole reply (RFC 7766 §8).
		return nil, fmt.Errorf("%w from %s: TC bit set", ErrMalformed, srv)
	}
	return resp, nil
}

// paddingBlock is the block length queries over encrypted transports are
// padded to (RFC 8467 §4.1, Block-Length Padding: 128 octets for queries).
const paddingBlock = 128

// pad returns the wire form of m with an EDNS(0) Padding option (RFC 7830)
// that makes it a multiple of paddingBlock octets long. m must carry an
// OPT record; m itself is not changed.
func pad(m *dns.Msg) ([]byte, error) {
	q := m.Copy()
	opt := q.IsEdns0()
	if opt == nil {
		return q.Pack()
	}
	b, err := q.Pack()
	if err != nil {
		return nil, err
	}
	// The option adds 4 octets of code and length (RFC 7830 §3) before
	// its padding.
	n := (paddingBlock - (len(b)+4)%paddingBlock) % paddingBlock
	opt.Option = append(opt.Option, &dns.EDNS0_PADDING{Padding: make([]byte, n)})
	return q.Pack()
}

// ioError classifies an I/O error: cancelled by ctx, attempt timed out, a
// reply cut short over TCP, or a network error. ignored is the last bad
// reply ignored over UDP, if any.
func (r *Resolver) ioError(ctx, actx context.Context, network string, err, ignored error) error {
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		err = fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	case ctx.Err() != nil:
		err = ctx.Err()
	case actx.Err() != nil || isTimeout(err):
		err = fmt.Errorf("%w after %v over %s", ErrTimeout, r.timeout, network)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: reply cut short over %s: %w", ErrMalformed, network, err)
	}
	if ignored != nil {
		return fmt.Errorf("%w (ignored %w)", err, ignored)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// unpack parses a reply; it never panics.
func unpack(b []byte) (m *dns.Msg, err error) {
	defer func() {
		if p := recover(); p != nil {
			m, err = nil, fmt.Errorf("panic parsing: %v", p)
		}
	}()
	m = new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return nil, err
	}
	return m, nil
}

// check reports whether resp answers req.
func check(req, resp *dns.Msg) error {
	switch {
	case !resp.Response:
		return errors.New("not a response")
	case resp.Id != req.Id:
		return fmt.Errorf("ID %d, want %d", resp.Id, req.Id)
	case resp.Opcode != req.Opcode:
		return fmt.Errorf("opcode %d, want %d", resp.Opcode, req.Opcode)
	case len(resp.Question) != 1:
		return fmt.Errorf("%d questions, want 1", len(resp.Question))
	}
	q, want := resp.Question[0], req.Question[0]
	if !strings.EqualFold(q.Name, want.Name) || q.Qtype != want.Qtype || q.Qclass != want.Qclass {
		return fmt.Errorf("question %s %s, want %s %s",
			q.Name, dns.TypeToString[q.Qtype], want.Name, dns.TypeToString[want.Qtype])
	}
	return nil
}
