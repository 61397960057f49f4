//go:build !linux

package loopback

import (
	"errors"
	"fmt"
	"runtime"
)

// Blackhole would make connects to addr hang; it needs Linux's accept-queue
// behaviour and TCP_INFO, so elsewhere it reports errors.ErrUnsupported.
func Blackhole(addr string) (*Fault, error) {
	return nil, fmt.Errorf("dialertest: blackhole %s on %s: %w", addr, runtime.GOOS, errors.ErrUnsupported)
}
