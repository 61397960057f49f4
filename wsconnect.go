package dialer

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
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

// The request headers of a WebSocket's extended CONNECT, per RFC 8441 §4–5
// (HTTP/2) and RFC 9220 §3 (HTTP/3, same rules), against coder/websocket's
// RFC 6455 §4.1 GET:
//
//	:method             CONNECT                       RFC 8441 §4
//	:protocol           websocket                     RFC 8441 §4
//	:scheme             https for wss, http for ws    RFC 8441 §5
//	:path               the URL's path and query      RFC 8441 §5, RFC 9113 §8.3.1
//	:authority          the URL's host, or WithHeader's Host  RFC 8441 §5
//	sec-websocket-version     13, as on HTTP/1.1      RFC 8441 §5, RFC 6455 §4.1
//	sec-websocket-protocol    WithSubprotocols        RFC 6455 §4.1 (item 10)
//	sec-websocket-extensions  permessage-deflate (WithCompression)  RFC 7692
//	other headers       WithHeader's, lowercase names RFC 9113 §8.2
//	not sent            Sec-WebSocket-Key (RFC 8441 §5: not used), Host (it is
//	                    :authority) and the connection-specific fields
//	                    (RFC 9113 §8.2.2, RFC 9114 §4.2): Connection, Upgrade,
//	                    Keep-Alive, Proxy-Connection, Transfer-Encoding, and TE
//	                    unless it is "trailers"
//
// The HTTP/2 and HTTP/3 clients write the pseudo-headers and lowercase the
// names. Over HTTP/2 the client is the package's own (h2conn), except on a
// connection a Transport opened, where x/net's adds user-agent and
// accept-encoding (harmless: a 2xx answer to CONNECT carries no content
// coding, RFC 9110 §9.3.6). The HTTP/1.1
// upgrade is coder/websocket's, per RFC 6455 §4.1 (GET, Host, Upgrade:
// websocket, Connection: Upgrade, Sec-WebSocket-Key, -Version: 13, and the
// same -Protocol and -Extensions). integration/wire_test.go checks the
// HTTP/2 request field by field off the wire.
var notOnConnect = []string{"Connection", "Upgrade", "Sec-Websocket-Key", "Host", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding"}

func (rt *connectRT) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.Header.Get("Sec-WebSocket-Key")
	hdr := req.Header.Clone()
	for _, h := range notOnConnect {
		hdr.Del(h)
	}
	if te := hdr.Values("Te"); len(te) > 0 && !(len(te) == 1 && strings.EqualFold(te[0], "trailers")) {
		hdr.Del("Te")
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
