package dialer

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
)

// TestUnprocessed checks which request errors let Transport send a request
// again whatever its method: only those that prove the server never
// processed it.
func TestUnprocessed(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{http2.StreamError{StreamID: 3, Code: http2.ErrCodeRefusedStream}, true},
		{fmt.Errorf("h2 127.0.0.1:1: %w", http2.StreamError{StreamID: 3, Code: http2.ErrCodeRefusedStream}), true},
		{http2.StreamError{StreamID: 3, Code: http2.ErrCodeCancel}, false},
		{&http3.Error{Remote: true, ErrorCode: http3.ErrCodeRequestRejected}, true},
		{&http3.Error{Remote: true, ErrorCode: http3.ErrCodeRequestCanceled}, false},
		{fmt.Errorf("h2 127.0.0.1:1: %w", errors.New("http2: client conn not usable")), true},
		{errors.New("http2: client conn not usable at all"), false},
		{io.ErrUnexpectedEOF, false},
		{http2.GoAwayError{LastStreamID: 1, ErrCode: http2.ErrCodeNo}, false},
	} {
		if got := unprocessed(c.err); got != c.want {
			t.Errorf("unprocessed(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
