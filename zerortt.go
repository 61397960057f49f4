package dialer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/eyeballs/dialer/internal/hev3"
)

// QUIC 0-RTT (RFC 9001 §4.6) with remembered HTTP/3 SETTINGS (RFC 9114
// §7.2.4.2). When the Dialer remembers the SETTINGS the origin sent under
// the same trust, with its tickets, and the round trip was at least
// minEarlyRTT, a QUIC attempt dials early (quic-go's DialEarly): with a
// ticket that allows early data the connection is usable before its
// handshake ends, and the remembered SETTINGS stand in for the new ones
// until they arrive.
//
//	what                          goes in 0-RTT
//	Transport GET, HEAD, OPTIONS  yes, by default, without a body or trailers
//	other Transport requests      no: they wait for the handshake (POST never goes early, nor TRACE)
//	WebSocket extended CONNECT    only with WithEarlyData, and only if the remembered SETTINGS enable extended CONNECT
//	WebTransport session request  no: webtransport-go asks only after the handshake and the new SETTINGS
//
// The server rejecting 0-RTT voids what was sent early: it is sent again
// once the handshake is done, on the new SETTINGS alone, and the caller
// sees one answer. A 425 Too Early answer (RFC 8470 §5.2) is retried the
// same way. A server that accepts 0-RTT and then sends SETTINGS that take
// back what was remembered breaks RFC 9114 §7.2.4.2: the connection is
// closed with H3_SETTINGS_ERROR, the session request made on the promise
// fails (the WebSocket ladder goes on with h2), and the SETTINGS are
// forgotten.

// h3SettingsError is H3_SETTINGS_ERROR (RFC 9114 §8.1).
const h3SettingsError = quic.ApplicationErrorCode(http3.ErrCodeSettingsError)

// errSettingsChanged says that a server's new HTTP/3 SETTINGS lack a
// capability its remembered ones promised, on which a request was sent in
// 0-RTT.
var errSettingsChanged = errors.New("the server's new HTTP/3 SETTINGS took back what its remembered SETTINGS promised")

// errEarlyNoConnect says that after a rejected 0-RTT the server's new
// SETTINGS no longer enable extended CONNECT: the request sent early on the
// old promise was void and cannot be sent again.
var errEarlyNoConnect = fmt.Errorf("%w: 0-RTT rejected and the server's new HTTP/3 SETTINGS lack extended CONNECT", ErrUnsupported)

// earlyPlan is a decision that a race's QUIC attempts dial early
// (quic-go's DialEarly), on the SETTINGS remembered with the origin's
// tickets. Without a ticket that allows early data, DialEarly is Dial: the
// handshake ends before it returns and the new SETTINGS count, as ever.
type earlyPlan struct {
	promised hev3.Settings // the remembered SETTINGS
	rtt      time.Duration // the round trip of the connection they came on
}

// earlyStall bounds how long an early connection may go without finishing
// its handshake: an early dial wins its race before any packet comes back,
// so a path that stopped carrying UDP since would otherwise hold the
// request for QUIC's whole handshake timeout (5 s) instead of going to TCP.
// Closed, the connection fails its request as broken and the next race
// tries QUIC last.
func (p *earlyPlan) earlyStall() time.Duration {
	return 250*time.Millisecond + 3*p.rtt
}

// minEarlyRTT is the smallest round trip on which a dial goes early. 0-RTT
// saves one round trip and costs replay exposure (RFC 9001 §9.2); below 2
// ms the saving is less than the handshake's own crypto, so the dial takes
// no risk for it. It also keeps loopback dials out of a race in quic-go
// v0.64.1, which reads the server's transport parameters without a lock
// when a stream opens in 0-RTT (Conn.newFlowController against
// Conn.handleTransportParameters): on a real round trip the stream is open
// long before they arrive.
const minEarlyRTT = 2 * time.Millisecond

// planEarly decides whether the QUIC attempts of a race of spec under cfg
// dial early: when the SETTINGS of an earlier connection to the origin are
// remembered in the partition of its tickets (same trust and origin; see
// sessions), and its round trip was at least minEarlyRTT. session says the race's request is a WebSocket handshake: it
// goes early only with WithEarlyData and when the remembered SETTINGS
// enable extended CONNECT. WebTransport races never dial early.
func (d *Dialer) planEarly(cfg config, spec raceSpec, session bool) *earlyPlan {
	if spec.tls == nil || spec.wt != nil || !spec.versions.Has(hev3.H3) {
		return nil
	}
	sess := d.sessions.get(originKey(cfg.trust().via(spec.proxy), spec.serverName(), spec.originPort()))
	st := sess.H3Settings()
	rtt := sess.earlyRTT()
	if st == nil || rtt < minEarlyRTT {
		return nil
	}
	promised := settingsOf(st)
	if session && (!cfg.earlyData || !promised.ExtendedConnect) {
		return nil
	}
	return &earlyPlan{promised: promised, rtt: rtt}
}

// settingsOf reads the capability bits of HTTP/3 SETTINGS.
func settingsOf(s *http3.Settings) hev3.Settings {
	return hev3.Settings{
		ExtendedConnect: s.EnableExtendedConnect,
		Datagrams:       s.EnableDatagrams,
		WebTransport:    s.Other[settingWebTransportEnabled] != 0,
	}
}

// remember keeps the SETTINGS the connection received with the tickets of
// its partition, for 0-RTT on a later connection (RFC 9114 §7.2.4.2).
// Only the capability bits are kept: nothing else of them is used early.
func (h *h3Conn) remember() {
	if h.sess == nil {
		return
	}
	s := h.client().Settings()
	kept := &http3.Settings{EnableExtendedConnect: s.EnableExtendedConnect, EnableDatagrams: s.EnableDatagrams}
	if v := s.Other[settingWebTransportEnabled]; v != 0 {
		kept.Other = map[uint64]uint64{settingWebTransportEnabled: v}
	}
	h.sess.SetH3Settings(kept)
	h.sess.setEarlyRTT(h.qc.ConnectionStats().SmoothedRTT)
}

// setEarlyRTT records the smoothed RTT of the connection whose SETTINGS
// the partition remembers.
func (s *sessions) setEarlyRTT(d time.Duration) {
	s.mu.Lock()
	s.h3RTT = d
	s.mu.Unlock()
}

// earlyRTT returns the RTT setEarlyRTT recorded.
func (s *sessions) earlyRTT() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h3RTT
}

// covers reports whether SETTINGS s keep every capability promised had:
// what a 0-RTT request relied on must still hold (RFC 9114 §7.2.4.2: a
// server accepting 0-RTT must not reduce what it remembered).
func covers(s, promised hev3.Settings) bool {
	return (s.ExtendedConnect || !promised.ExtendedConnect) &&
		(s.Datagrams || !promised.Datagrams) &&
		(s.WebTransport || !promised.WebTransport)
}

// earlyState is an HTTP/3 connection dialed with DialEarly, until its
// handshake has ended and the server's new SETTINGS are known.
type earlyState struct {
	promised hev3.Settings
	done     chan struct{} // closed once resolved; the fields below are set then
	accepted bool          // the server accepted 0-RTT
	err      error         // the connection failed, or broke its 0-RTT promise (errSettingsChanged)
}

// resolved reports whether the handshake has ended and the new SETTINGS
// have been checked.
func (e *earlyState) resolved() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// wait waits until e is resolved and returns its error.
func (e *earlyState) wait(ctx context.Context) error {
	select {
	case <-e.done:
		return e.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// outcome is the Report's Attempt.EarlyData of an attempt that dialed
// early.
func (e *earlyState) outcome() string {
	switch {
	case !e.resolved():
		return "sent"
	case e.accepted:
		return "accepted"
	case e.err != nil:
		return "failed"
	}
	return "rejected"
}

// maxEarly1xx bounds the interim answers read before an early request's
// final one (quic-go's client allows 5).
const maxEarly1xx = 5

// errEarlyStalled is the error of an early connection whose handshake did
// not finish in time (earlyPlan.earlyStall).
var errEarlyStalled = errors.New("the path may no longer carry QUIC")

// startEarly makes h an early connection promising p and starts the
// goroutine that resolves it; it ends with the handshake or the
// connection.
func (h *h3Conn) startEarly(p *earlyPlan) {
	h.early = &earlyState{promised: p.promised, done: make(chan struct{})}
	go h.resolveEarly(p.earlyStall())
}

// settleLate readies a connection that DialEarly returned only after its
// handshake ended, before any HTTP/3 layer sent on it: nothing of ours
// went early, so what the server did with 0-RTT does not matter, but a
// rejection leaves quic-go refusing new streams until NextConnection.
// quic-go does not say whether 0-RTT was tried, only whether it was
// accepted; a new stream tells: refused after a rejection, else opened,
// and then sent as a reserved stream type that the server ignores.
func settleLate(qc *quic.Conn) (*quic.Conn, error) {
	if qc.ConnectionState().Used0RTT {
		return qc, nil
	}
	str, err := qc.OpenUniStream()
	switch {
	case errors.Is(err, quic.Err0RTTRejected):
		return qc.NextConnection(qc.Context()) // returns at once
	case err != nil:
		return nil, err
	}
	str.Write(quicvarint.Append(nil, h3GreaseStream))
	str.Close()
	return qc, nil
}

// h3GreaseStream is a reserved HTTP/3 stream type (RFC 9114 §6.2.3,
// 0x1f * N + 0x21 with N = 0): the server ignores the stream.
const h3GreaseStream = 0x21

// resolveEarly waits for the handshake of an early connection. On 0-RTT
// rejected, every stream opened early is void (quic-go fails them with
// quic.Err0RTTRejected): the connection goes on with a new HTTP/3 client
// (its control stream, sent early, was void too) and the new SETTINGS
// alone (RFC 9114 §7.2.4.2). On 0-RTT accepted, the new SETTINGS must
// keep what the remembered ones promised.
func (h *h3Conn) resolveEarly(stall time.Duration) {
	e := h.early
	defer close(e.done)
	qc := h.qc
	timer := time.NewTimer(stall)
	defer timer.Stop()
	select {
	case <-qc.HandshakeComplete():
	case <-timer.C:
		e.err = fmt.Errorf("QUIC handshake not done %v after a 0-RTT dial: %w", stall, errEarlyStalled)
		qc.CloseWithError(0, "handshake stalled")
		return
	case <-qc.Context().Done():
		e.err = fmt.Errorf("QUIC connection closed before its 0-RTT handshake ended: %w", context.Cause(qc.Context()))
		return
	}
	rejected := !qc.ConnectionState().Used0RTT
	e.accepted = !rejected
	if rejected {
		// The handshake is done: NextConnection returns at once.
		next, err := qc.NextConnection(qc.Context())
		if err != nil {
			e.err = fmt.Errorf("QUIC connection after 0-RTT was rejected: %w", err)
			return
		}
		cc := (&http3.Transport{EnableDatagrams: true}).NewClientConn(next)
		h.mu.Lock()
		h.cc = cc
		h.mu.Unlock()
	}
	cc := h.client()
	select {
	case <-cc.ReceivedSettings():
	case <-qc.Context().Done():
		e.err = fmt.Errorf("QUIC connection closed before the server's SETTINGS: %w", context.Cause(qc.Context()))
		return
	}
	if e.accepted && !covers(h3Settings(cc), e.promised) {
		// RFC 9114 §7.2.4.2: "If the server accepts 0-RTT but then sends
		// settings that are not compatible with the previously specified
		// settings, this MUST be treated as a connection error of type
		// H3_SETTINGS_ERROR."
		if h.sess != nil {
			h.sess.SetH3Settings(nil)
		}
		e.err = errSettingsChanged
		qc.CloseWithError(h3SettingsError, "SETTINGS reduced after 0-RTT was accepted")
		return
	}
	h.remember()
}

// h3Settings reads the capability bits of cc's received SETTINGS.
func h3Settings(cc *http3.ClientConn) hev3.Settings { return settingsOf(cc.Settings()) }

// client returns the connection's HTTP/3 client: the early one, or the one
// that replaced it after 0-RTT was rejected.
func (h *h3Conn) client() *http3.ClientConn {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cc
}

// earlySafe reports whether req may go in 0-RTT, where an attacker may
// replay it (RFC 8470 §1, RFC 9001 §9.2): GET, HEAD or OPTIONS without a
// body or trailers. They are safe methods (RFC 9110 §9.2.1), as TRACE is,
// which waits anyway: it reflects the request, credentials included, to
// whoever replays it.
func earlySafe(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		return false
	}
	return (req.Body == nil || req.Body == http.NoBody) && req.ContentLength == 0 && len(req.Trailer) == 0
}

// roundTrip sends req on the connection: in 0-RTT while the handshake
// goes on if req is earlySafe, after the handshake otherwise. What the
// server did not take early (0-RTT rejected, 425 Too Early) is sent
// again after the handshake, once, and the
// caller sees that answer only.
func (h *h3Conn) roundTrip(req *http.Request) (*http.Response, error) {
	e := h.early
	if e == nil || e.resolved() {
		return h.client().RoundTrip(req)
	}
	if earlySafe(req) {
		resp, err := h.earlyRequest(req)
		if werr := e.wait(req.Context()); werr != nil {
			if err == nil {
				resp.Body.Close()
			}
			return nil, werr
		}
		switch {
		case err == nil && resp.StatusCode == http.StatusTooEarly:
			// RFC 8470 §5.2: the server wants it after the handshake.
			resp.Body.Close()
		case e.accepted:
			if err == nil {
				st := h.qc.ConnectionState().TLS
				resp.TLS = &st
			}
			return resp, err
		case err == nil:
			// Rejected, yet an answer: not to the early request, whose
			// stream quic-go voided. Trust only the one sent again.
			resp.Body.Close()
		}
	} else if err := e.wait(req.Context()); err != nil {
		return nil, err
	}
	return h.client().RoundTrip(req)
}

// earlyRequest sends an earlySafe request in 0-RTT and reads its answer.
// It does what http3.ClientConn.RoundTrip does for its GET_0RTT and
// HEAD_0RTT methods, for OPTIONS too, but for one thing: the stream's FIN
// waits for the handshake. quic-go v0.64.1 keeps a
// stream that finished writing cancellable after 0-RTT was rejected, and
// ReadResponse's error path cancels it: the RESET_STREAM would go out
// after the handshake and hit the new stream with the same ID, the one
// the request is sent again on. An unfinished stream ignores that cancel.
func (h *h3Conn) earlyRequest(req *http.Request) (*http.Response, error) {
	e := h.early
	rs, err := h.client().OpenRequestStream(req.Context())
	if err != nil {
		return nil, err
	}
	if err := rs.SendRequestHeader(req); err != nil {
		return nil, err
	}
	go func() {
		<-e.done
		if e.err == nil && e.accepted {
			rs.Close() // FIN: the request is complete (RFC 9114 §4.1)
		}
	}()
	stop := context.AfterFunc(req.Context(), func() {
		rs.CancelRead(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
		rs.CancelWrite(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
	})
	// Interim answers (103 Early Hints, RFC 9110 §15.2) precede the final
	// one on the same stream: read past them, at most maxEarly1xx, as
	// quic-go's own client does (101 is final).
	trace := httptrace.ContextClientTrace(req.Context())
	var resp *http.Response
	for n := 0; ; n++ {
		resp, err = rs.ReadResponse()
		if err != nil {
			stop()
			return nil, err
		}
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if n == maxEarly1xx {
			stop()
			rs.CancelRead(quic.StreamErrorCode(http3.ErrCodeExcessiveLoad))
			rs.CancelWrite(quic.StreamErrorCode(http3.ErrCodeExcessiveLoad))
			return nil, fmt.Errorf("http3: more than %d informational answers", maxEarly1xx)
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				stop()
				return nil, err
			}
		}
	}
	resp.Request = req
	resp.Body = &earlyBody{ReadCloser: resp.Body, stop: stop}
	return resp, nil
}

// earlyBody is the body of an answer to an early request: closing it stops
// watching the request's context.
type earlyBody struct {
	io.ReadCloser
	stop func() bool
}

func (b *earlyBody) Close() error {
	b.stop()
	return b.ReadCloser.Close()
}

// earlyDataKey marks a context whose dial opted in to WithEarlyData.
type earlyDataKey struct{}

// withEarlyData marks ctx for WebSocket handshakes that may go in 0-RTT.
func withEarlyData(ctx context.Context, on bool) context.Context {
	if !on {
		return ctx
	}
	return context.WithValue(ctx, earlyDataKey{}, true)
}

// connectEarly opens an extended CONNECT stream on an early connection. It
// goes in 0-RTT when the dial opted in (WithEarlyData) and the remembered
// SETTINGS enable extended CONNECT; otherwise, or when the server rejected
// 0-RTT, it goes once the handshake is done and the new SETTINGS enable
// extended CONNECT. A stream is returned only on a promise the new
// SETTINGS kept.
func (h *h3Conn) connectEarly(ctx context.Context, u *url.URL, hdr http.Header, protocol string) (*http.Response, io.ReadWriteCloser, error) {
	e := h.early
	if on, _ := ctx.Value(earlyDataKey{}).(bool); on && e.promised.ExtendedConnect && !e.resolved() {
		resp, rwc, err := h.connectOn(ctx, h.client(), u, hdr, protocol)
		if werr := e.wait(ctx); werr != nil {
			if rwc != nil {
				rwc.Close()
			}
			return nil, nil, werr
		}
		if e.accepted {
			return resp, rwc, err
		}
		if rwc != nil {
			rwc.Close() // void: see roundTrip
		}
	} else if err := e.wait(ctx); err != nil {
		return nil, nil, err
	}
	cc := h.client()
	if !h3Settings(cc).ExtendedConnect {
		return nil, nil, errEarlyNoConnect
	}
	return h.connectOn(ctx, cc, u, hdr, protocol)
}

// noteEarly records in rep what the server did with the 0-RTT of the
// winner, car, if it dialed early.
func noteEarly(rep *Report, car *carrier) {
	if rep.Winner < 0 || rep.Winner >= len(rep.Attempts) || car == nil || car.h3 == nil || car.h3.early == nil {
		return
	}
	rep.Attempts[rep.Winner].EarlyData = car.h3.early.outcome()
}
