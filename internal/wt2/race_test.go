//go:build race

package wt2

// raceOn is whether the race detector runs, which allocates on its own.
const raceOn = true
