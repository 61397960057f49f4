//go:build race

package integration

// raceOn is whether the race detector runs, under which allocation counts
// mean nothing.
const raceOn = true
