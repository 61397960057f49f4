// Package durfmt formats the durations of a race for people: the Report's
// waterfall and reasons, and the command-line tool's drawings, all with
// one formatter so that the same time reads the same everywhere.
package durfmt

import (
	"fmt"
	"time"
)

// Format formats d with about three significant digits: "1.25s",
// "12.3ms", "250µs".
func Format(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}
