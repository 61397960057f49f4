//go:build race

package h2conn

// raceOn is whether the race detector runs, which makes bulk transfers
// about eight times slower.
const raceOn = true
