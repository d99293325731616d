//go:build race

package e2e

// raceEnabled: this test binary runs with the race detector, so mount-ws
// is built with it too and a race in mount-ws fails the test that met it.
const raceEnabled = true
