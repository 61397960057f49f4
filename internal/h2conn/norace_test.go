//go:build !race

package h2conn

const raceOn = false
