package dialer

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"

	"github.com/eyeballs/dialer/internal/h2conn"
)

// TestBlamesProtocol: which failed extended CONNECTs send a WebSocket down
// the ladder. Only the server's own answers count: the listed statuses and
// stream resets other than "not processed"; local conditions and
// application answers do not.
func TestBlamesProtocol(t *testing.T) {
	status := func(code int) (*http.Response, error) {
		return &http.Response{StatusCode: code}, fmt.Errorf("%w: %d", ErrRejected, code)
	}
	for _, code := range []int{400, 405, 421, 501, 505} {
		if r, err := status(code); !blamesProtocol(r, err) {
			t.Errorf("%d does not step down", code)
		}
	}
	for _, code := range []int{401, 403, 404, 407, 429, 500, 502, 503} {
		if r, err := status(code); blamesProtocol(r, err) {
			t.Errorf("%d steps down; it is the application's answer", code)
		}
	}
	wrap := func(err error) error { return fmt.Errorf("failed to WebSocket dial: %w", err) }
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"x/net RST_STREAM PROTOCOL_ERROR", http2.StreamError{Code: http2.ErrCodeProtocol}, true},
		{"x/net RST_STREAM REFUSED_STREAM", http2.StreamError{Code: http2.ErrCodeRefusedStream}, false},
		{"h2conn reset by the peer", &h2conn.StreamError{Code: http2.ErrCodeProtocol, Remote: true}, true},
		{"h2conn refused by the peer", &h2conn.StreamError{Code: http2.ErrCodeRefusedStream, Remote: true}, false},
		{"h2conn reset by us", &h2conn.StreamError{Code: http2.ErrCodeCancel, Cause: errors.New("ctx")}, false},
		{"h3 H3_MESSAGE_ERROR from the server", &http3.Error{Remote: true, ErrorCode: http3.ErrCodeMessageError}, true},
		{"h3 H3_REQUEST_REJECTED", &http3.Error{Remote: true, ErrorCode: http3.ErrCodeRequestRejected}, false},
		{"QUIC stream reset by the server", &quic.StreamError{Remote: true, ErrorCode: quic.StreamErrorCode(http3.ErrCodeGeneralProtocolError)}, true},
		{"QUIC stream reset by us", &quic.StreamError{ErrorCode: quic.StreamErrorCode(http3.ErrCodeRequestCanceled)}, false},
		{"a full connection", errors.New("http2: client conn not usable"), false},
		{"no error", nil, false},
	} {
		err := tc.err
		if err != nil {
			err = wrap(err)
		}
		if got := blamesProtocol(nil, err); got != tc.want {
			t.Errorf("%s: steps down %v, want %v", tc.name, got, tc.want)
		}
	}
}
