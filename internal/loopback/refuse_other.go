//go:build !linux

package loopback

import (
	"errors"
	"fmt"
	"runtime"
)

// Refuse would keep addr bound without listening, so connects are refused;
// it needs Unix sockets, so elsewhere it reports errors.ErrUnsupported.
func Refuse(addr string) (*Fault, error) {
	return nil, fmt.Errorf("dialertest: refuse %s on %s: %w", addr, runtime.GOOS, errors.ErrUnsupported)
}
