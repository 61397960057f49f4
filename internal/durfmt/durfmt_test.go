package durfmt

import (
	"testing"
	"time"
)

// TestFormat: three significant digits or so, in the largest unit that fits.
func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0µs"},
		{999 * time.Nanosecond, "0µs"},
		{250 * time.Microsecond, "250µs"},
		{999 * time.Microsecond, "999µs"},
		{time.Millisecond, "1.0ms"},
		{12345 * time.Microsecond, "12.3ms"},
		{999 * time.Millisecond, "999.0ms"},
		{time.Second, "1.00s"},
		{1250 * time.Millisecond, "1.25s"},
		{90 * time.Second, "90.00s"},
	} {
		if got := Format(tc.d); got != tc.want {
			t.Errorf("Format(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
