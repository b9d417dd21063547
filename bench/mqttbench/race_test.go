//go:build race

package main

// raceEnabled: the race detector slows both the bench and the hub process
// (the test binary plays the hub) several times over.
const raceEnabled = true
