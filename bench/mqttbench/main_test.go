package main

import (
	"os"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/testkit"
)

// TestMain lets the test binary play the hub process, as the command does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "hub" {
		if err := runHub(os.Args[2:]); err != nil {
			os.Stderr.WriteString("mqttbench hub: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestBenchSmoke runs every workload at a tiny size against both brokers
// and checks that each produced a figure: the bench itself works (the
// figures are not asserted; a benchmark is not a timed test).
func TestBenchSmoke(t *testing.T) {
	if _, err := findMosquitto(""); err != nil { // /usr/sbin is not on every PATH
		testkit.NeedTool(t, "mosquitto")
	}
	if testing.Short() {
		t.Skip("starts two brokers")
	}
	phases := "handshake,throughput,fanin"
	rows := []string{"mTLS handshakes/s, 8 dialer(s)", "QoS 1, 1024 B", "fan-in 50: latency p99 ms", "RSS KiB per idle mTLS connection at 50"}
	if raceEnabled { // keep the suite's time: the throughput phase is the long one under -race
		phases, rows = "handshake,fanin", append(rows[:1], rows[2:]...)
	}
	var out strings.Builder
	err := run([]string{"-quick", "-reps", "1", "-window", "200ms", "-scale", "50", "-phases", phases}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		found := false
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.Contains(line, row) {
				found = true
				if strings.Count(line, "| - |") > 0 {
					t.Errorf("no figure for a broker: %s", line)
				}
			}
		}
		if !found {
			t.Errorf("row %q missing:\n%s", row, out.String())
		}
	}
}
