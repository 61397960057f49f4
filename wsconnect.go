package dialer

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net/http"
)

// connectRT lets coder/websocket run its client handshake over an RFC 8441
// or RFC 9220 extended CONNECT stream. coder/websocket only speaks the
// HTTP/1.1 upgrade: it sends a GET with Upgrade headers and wants a 101 whose
// body is the byte stream. connectRT turns that GET into an extended CONNECT
// (dropping the headers RFC 8441 §4 does not use) and, on a 2xx answer,
// hands back a 101 built from the server's headers with the
// Sec-WebSocket-Accept the GET's key expects. Every other answer is passed
// through, so coder/websocket reports it and the caller sees the real
// response.
type connectRT struct {
	open func(ctx context.Context, hdr http.Header) (*http.Response, io.ReadWriteCloser, error)
	// resp is the server's real answer; stream the byte stream on 2xx.
	resp   *http.Response
	stream io.ReadWriteCloser
}

// websocketGUID is RFC 6455's key suffix.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func (rt *connectRT) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.Header.Get("Sec-WebSocket-Key")
	hdr := req.Header.Clone()
	for _, h := range []string{"Connection", "Upgrade", "Sec-WebSocket-Key"} {
		hdr.Del(h)
	}
	resp, stream, err := rt.open(req.Context(), hdr)
	if err != nil {
		return nil, err
	}
	rt.resp, rt.stream = resp, stream
	if stream == nil {
		return resp, nil
	}
	h := resp.Header.Clone()
	h.Set("Connection", "Upgrade")
	h.Set("Upgrade", "websocket")
	sum := sha1.Sum([]byte(key + websocketGUID))
	h.Set("Sec-WebSocket-Accept", base64.StdEncoding.EncodeToString(sum[:]))
	return &http.Response{
		Status:     "101 Switching Protocols",
		StatusCode: http.StatusSwitchingProtocols,
		Proto:      resp.Proto,
		ProtoMajor: resp.ProtoMajor,
		ProtoMinor: resp.ProtoMinor,
		Header:     h,
		Body:       stream,
		Request:    req,
	}, nil
}
