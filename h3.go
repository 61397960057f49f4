package dialer

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/eyeballs/dialer/internal/hev3"
)

// settingWebTransportEnabled is SETTINGS_WT_ENABLED of
// draft-ietf-webtrans-http3 (as webtransport-go v0.13.0 sends it).
const settingWebTransportEnabled = 0x2c7cf000

// quicConfig is the QUIC configuration of every attempt. Datagrams and
// partial stream resets are only transport parameters; enabling them on
// every connection lets any QUIC connection later carry WebTransport.
func quicConfig() *quic.Config {
	return &quic.Config{
		EnableDatagrams:                  true,
		EnableStreamResetPartialDelivery: true,
		KeepAlivePeriod:                  15 * time.Second,
	}
}

// udpSockets holds one race's UDP sockets: one per family, opened on first
// use and shared by that family's QUIC attempts.
type udpSockets struct {
	mu     sync.Mutex
	tr     [2]*quic.Transport // by hev3.Family
	closed bool
}

// transport returns the QUIC transport of family f.
func (s *udpSockets) transport(f hev3.Family) (*quic.Transport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, net.ErrClosed
	}
	if s.tr[f] != nil {
		return s.tr[f], nil
	}
	laddr := &net.UDPAddr{IP: net.IPv6unspecified}
	network := "udp6"
	if f == hev3.IPv4 {
		laddr, network = &net.UDPAddr{IP: net.IPv4zero}, "udp4"
	}
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	s.tr[f] = &quic.Transport{Conn: c}
	return s.tr[f], nil
}

// close closes every socket except keep's, which a winning connection owns
// from now on. No new transport can be opened afterwards.
func (s *udpSockets) close(keep *quic.Transport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, tr := range s.tr {
		if tr != nil && tr != keep {
			closeTransport(tr)
		}
	}
}

// handOver closes the race's sockets except the one under win, an h3
// winner, which owns it from now on and closes it with its connection.
func (s *udpSockets) handOver(win *carrier) {
	var keep *quic.Transport
	if win != nil && win.h3 != nil {
		keep = win.transport
		win.h3.own(keep)
	}
	s.close(keep)
}

// closeTransport closes a QUIC transport and its UDP socket.
func closeTransport(tr *quic.Transport) {
	tr.Close()
	tr.Conn.Close()
}

// h3Conn is an HTTP/3 client connection on a raced QUIC connection. It is
// the only HTTP/3 layer on that connection.
type h3Conn struct {
	qc *quic.Conn
	// Exactly one of cc and wcc owns the connection: wcc when it was opened
	// for WebTransport (it also carries WebSocket through RoundTrip), cc
	// otherwise.
	cc  *http3.ClientConn
	wcc *webtransport.ClientConn
	// wt is the session request a WebTransport attempt makes as its
	// capability check, and wtResp, wtSess and wtErr its outcome.
	wt     *wtRequest
	wtResp *http.Response
	wtSess *webtransport.Session
	wtErr  error
	// early is set when the connection was dialed with 0-RTT (zerortt.go);
	// sess, the partition of its TLS sessions, remembers the SETTINGS it
	// receives (nil: nothing is remembered).
	early *earlyState
	sess  *sessions
	// tr is the UDP socket, closed with the connection once the race has
	// handed it over (nil while the race still shares it). mu also guards
	// cc, which an early connection replaces when 0-RTT is rejected.
	mu sync.Mutex
	tr *quic.Transport
}

// wtConfig enables WebTransport session flow control (draft-ietf-webtrans-
// http3 §5): without it a server allows one session per connection, and a
// second session to the origin could not reuse the QUIC connection.
func wtConfig() *webtransport.Config {
	return &webtransport.Config{MaxIncomingStreams: 256, MaxIncomingUniStreams: 256, MaxIncomingData: 16 << 20}
}

// wtRequest is the WebTransport session a race asks for.
type wtRequest struct {
	url       *url.URL
	header    http.Header
	protocols []string
}

// dialQUIC returns the attempt function for QUIC endpoints. With wt set,
// the connection is owned by webtransport-go and its capability check is
// the session request itself. TLS sessions are resumed from, and kept in,
// sess (when not nil; see tlsSessions). With plan set (and no wt), it
// dials with 0-RTT (zerortt.go); sess remembers the SETTINGS.
func dialQUIC(conf *tls.Config, serverName string, socks *udpSockets, wt *wtRequest, sess *sessions, plan *earlyPlan) dialFunc {
	return func(ctx context.Context, ep hev3.Endpoint, _ func()) (*carrier, error) {
		tr, err := socks.transport(hev3.FamilyOf(ep.Addr.Addr()))
		if err != nil {
			return nil, err
		}
		trace := httptrace.ContextClientTrace(ctx)
		addr := ep.Addr.String()
		if trace != nil && trace.ConnectStart != nil {
			trace.ConnectStart("udp", addr)
		}
		if trace != nil && trace.TLSHandshakeStart != nil {
			trace.TLSHandshakeStart()
		}
		// early is this attempt's: attempts run at once. An attempt
		// offering ECH does not go early: ECH's retry rules (ech.go) need
		// the handshake's outcome before anything is sent.
		early := plan
		if wt != nil || len(ep.ECH) > 0 || conf.EncryptedClientHelloConfigList != nil {
			early = nil
		}
		dial := tr.Dial
		if early != nil {
			dial = tr.DialEarly
		}
		qc, ech, err := withECH(ctx, attemptTLS(conf, serverName, ep, tlsSessions(conf, sess, true)), func(ctx context.Context, conf *tls.Config) (*quic.Conn, error) {
			return dial(ctx, net.UDPAddrFromAddrPort(ep.Addr), conf, quicConfig())
		})
		if trace != nil && trace.TLSHandshakeDone != nil {
			var state tls.ConnectionState
			if qc != nil {
				state = qc.ConnectionState().TLS
			}
			trace.TLSHandshakeDone(state, err)
		}
		if trace != nil && trace.ConnectDone != nil {
			trace.ConnectDone("udp", addr, err)
		}
		if err != nil {
			return nil, err
		}
		if early != nil {
			select {
			case <-qc.HandshakeComplete():
				// Up only after the handshake: nothing of ours goes early.
				early = nil
				next, err := settleLate(qc)
				if err != nil {
					qc.CloseWithError(0, "")
					return nil, err
				}
				qc = next
			default:
			}
		}
		h := &h3Conn{qc: qc, wt: wt, sess: sess}
		if wt == nil {
			h.cc = (&http3.Transport{EnableDatagrams: true}).NewClientConn(qc)
			if early != nil {
				h.startEarly(early) // up with 0-RTT keys, before the handshake ended
			}
		} else if h.wcc, err = (&webtransport.Transport{ApplicationProtocols: wt.protocols, Config: wtConfig()}).NewClientConn(qc); err != nil {
			qc.CloseWithError(0, "")
			return nil, err
		}
		return &carrier{version: hev3.H3, ep: ep, h3: h, transport: tr, sessions: sess, ech: ech}, nil
	}
}

// settings waits for the server's HTTP/3 SETTINGS. On a WebTransport
// connection it requests the session, which checks them.
func (h *h3Conn) settings(ctx context.Context) (hev3.Settings, error) {
	if h.wcc != nil {
		return h.firstSession(ctx)
	}
	if h.early != nil {
		// The remembered SETTINGS stand until the new ones arrive (RFC
		// 9114 §7.2.4.2); resolveEarly checks them.
		return h.early.promised, nil
	}
	select {
	case <-h.cc.ReceivedSettings():
	case <-ctx.Done():
		return hev3.Settings{}, context.Cause(ctx)
	case <-h.qc.Context().Done():
		return hev3.Settings{}, fmt.Errorf("QUIC connection closed before the server's SETTINGS: %w", context.Cause(h.qc.Context()))
	}
	s := h3Settings(h.cc)
	h.remember()
	return s, nil
}

// firstSession asks for the WebTransport session. webtransport-go checks
// the server's SETTINGS first and says which requirement is not met; the
// capability bits are derived from that. A server that answers the request
// at all (2xx or not) has the capability: its answer is kept for the dial.
func (h *h3Conn) firstSession(ctx context.Context) (hev3.Settings, error) {
	resp, sess, err := h.wcc.Dial(ctx, h.wt.url.String(), h.wt.header)
	if rn, ok := errors.AsType[*webtransport.RequirementsNotMetError](err); ok {
		return requirementsNotMet(rn), nil
	}
	if err != nil && resp == nil {
		if h.qc.Context().Err() != nil {
			err = fmt.Errorf("QUIC connection closed before the server's SETTINGS and session answer: %w", err)
		}
		return hev3.Settings{}, err
	}
	h.wtResp, h.wtSess, h.wtErr = resp, sess, err
	return hev3.Settings{ExtendedConnect: true, Datagrams: true, WebTransport: true}, nil
}

// alive reports whether the connection can open new streams.
func (h *h3Conn) alive() bool { return h.qc.Context().Err() == nil }

// own hands the UDP socket to the connection: it is closed with it.
func (h *h3Conn) own(tr *quic.Transport) {
	h.mu.Lock()
	h.tr = tr
	h.mu.Unlock()
}

// Close closes the QUIC connection and, once the race handed it over, its
// UDP socket.
func (h *h3Conn) Close() error {
	err := h.qc.CloseWithError(0, "")
	h.mu.Lock()
	tr := h.tr
	h.tr = nil
	h.mu.Unlock()
	if tr != nil {
		closeTransport(tr)
	}
	return err
}

// connect opens an RFC 9220 extended CONNECT stream with :protocol set to
// protocol. On a 2xx answer the stream carries the session; otherwise it is
// closed and the response is returned alone.
func (h *h3Conn) connect(ctx context.Context, u *url.URL, hdr http.Header, protocol string) (*http.Response, io.ReadWriteCloser, error) {
	if h.wcc != nil {
		return connectRoundTrip(ctx, h.wcc, u, hdr, func(r *http.Request) { r.Proto = protocol })
	}
	if h.early != nil {
		return h.connectEarly(ctx, u, hdr, protocol)
	}
	return h.connectOn(ctx, h.cc, u, hdr, protocol)
}

// connectOn opens the extended CONNECT stream of connect on cc.
func (h *h3Conn) connectOn(ctx context.Context, cc *http3.ClientConn, u *url.URL, hdr http.Header, protocol string) (*http.Response, io.ReadWriteCloser, error) {
	rs, err := cc.OpenRequestStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	// Abort the stream if ctx ends during the handshake.
	stop := context.AfterFunc(ctx, func() {
		rs.CancelRead(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
		rs.CancelWrite(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
	})
	req := (&http.Request{
		Method: http.MethodConnect,
		URL:    u,
		Host:   u.Host,
		Proto:  protocol,
		Header: hdr,
	}).WithContext(ctx)
	if err := rs.SendRequestHeader(req); err != nil {
		stop()
		rs.CancelRead(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
		rs.CancelWrite(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
		return nil, nil, err
	}
	resp, err := rs.ReadResponse()
	if !stop() {
		if err == nil {
			err = context.Cause(ctx)
		}
	}
	if err != nil {
		rs.CancelRead(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
		rs.CancelWrite(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
		return nil, nil, err
	}
	if resp.StatusCode/100 != 2 {
		resp.Body = readSome(ctx, newH3Stream(rs))
		return resp, nil, nil
	}
	resp.Body = http.NoBody
	return resp, newH3Stream(rs), nil
}

// h3Stream is the byte stream of an extended CONNECT over HTTP/3.
//
// quic-go's Write returns only once all but the last packet of its slice
// has been packed by the connection's send loop: a hand-off there and
// back per call. Writes above one packet therefore go through a
// writeBehind, batched into one DATA frame (RFC 9114 §7.2.1) per batch;
// writes of one packet or less go straight to quic-go, which copies them
// without waiting.
type h3Stream struct {
	rs *http3.RequestStream
	wb *writeBehind
}

// h3InlineWrite is the largest write sent straight to quic-go: one that
// fits one packet's stream frame, which quic-go copies without waiting.
const h3InlineWrite = 1200

func newH3Stream(rs *http3.RequestStream) *h3Stream {
	end := func(err error) {
		if err != nil {
			rs.CancelWrite(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
			return
		}
		rs.Close() // FIN
	}
	return &h3Stream{rs: rs, wb: newWriteBehind(rs, h3InlineWrite, end, rs.SetWriteDeadline)}
}

// sent is closed once the send side has ended after Close.
func (s *h3Stream) sent() <-chan struct{} { return s.wb.sent() }

// Read reads from the stream.
func (s *h3Stream) Read(p []byte) (int, error) { return s.rs.Read(p) }

// Write sends p on the stream: straight for a small write, else behind.
func (s *h3Stream) Write(p []byte) (int, error) { return s.wb.Write(p) }

// Close closes both directions: the send side with FIN once what was
// written behind has been sent (within closeDrain), the receive side at
// once. After the server ended the stream, the send side may already be
// reset; that is not an error at this point.
func (s *h3Stream) Close() error {
	s.wb.Close()
	s.rs.CancelRead(quic.StreamErrorCode(http3.ErrCodeNoError))
	return nil
}

// readSome returns up to 1 KiB of a rejected answer's body, for errors,
// waiting at most a second for it, and no longer than ctx, and closes
// body: the stream is done.
func readSome(ctx context.Context, body io.ReadCloser) io.ReadCloser {
	done := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(body, 1024))
		done <- b
	}()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	var b []byte
	select {
	case b = <-done:
		body.Close()
	case <-t.C:
		body.Close() // unblocks the read
		b = <-done
	case <-ctx.Done():
		body.Close()
		b = <-done
	}
	return io.NopCloser(bytes.NewReader(b))
}
