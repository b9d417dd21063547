package main

import (
	"fmt"
	"io"
	"math"
	"strings"
)

type cryptoRow struct {
	group              string
	server, client     float64 // µs per handshake
	serverOnly, shared float64 // implied handshakes/s on all cores
}

type table struct {
	order  []string
	rows   map[string]map[string]sample
	groups map[string]string
	crypto []cryptoRow
	notes  []string
}

func newTable() *table {
	return &table{rows: map[string]map[string]sample{}, groups: map[string]string{}}
}

func (t *table) add(figure, broker string, s sample, _ bool) {
	if t.rows[figure] == nil {
		t.rows[figure] = map[string]sample{}
		t.order = append(t.order, figure)
	}
	t.rows[figure][broker] = s
}

func cell(s sample) string {
	if len(s) == 0 {
		return "-"
	}
	med, lo, hi := s.stats()
	if len(s) == 1 {
		return num(med)
	}
	return fmt.Sprintf("%s [%s–%s]", num(med), num(lo), num(hi))
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func (t *table) print(out io.Writer, pl plan) {
	for b, g := range t.groups {
		fmt.Fprintf(out, "# %s negotiates %s\n", b, g)
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| figure | hub | mosquitto | hub/mosquitto |")
	fmt.Fprintln(out, "|---|---:|---:|---:|")
	for _, f := range t.order {
		h, m := t.rows[f]["hub"], t.rows[f]["mosquitto"]
		ratio := "-"
		if len(h) > 0 && len(m) > 0 {
			hm, _, _ := h.stats()
			mm, _, _ := m.stats()
			if mm != 0 {
				ratio = fmt.Sprintf("%.2f", hm/mm)
			}
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s |\n", f, cell(h), cell(m), ratio)
	}
	if len(t.crypto) > 0 {
		fmt.Fprintln(out)
		fmt.Fprintln(out, "| handshake crypto (testing.B) | server µs | client µs | ceiling, server only (hs/s, all cores) | ceiling with the client on the same cores | hub N-dialer rate as % of shared ceiling |")
		fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|")
		var hubRate float64
		for _, f := range t.order {
			if strings.HasPrefix(f, "mTLS handshakes/s") && !strings.Contains(f, " 1 dialer") {
				hubRate, _, _ = t.rows[f]["hub"].stats()
			}
		}
		for _, c := range t.crypto {
			frac := "-"
			if hubRate > 0 {
				frac = fmt.Sprintf("%.0f%%", 100*hubRate/c.shared)
			}
			fmt.Fprintf(out, "| %s | %.0f | %.0f | %.0f | %.0f | %s |\n", c.group, c.server, c.client, c.serverOnly, c.shared, frac)
		}
	}
	if len(t.notes) > 0 {
		fmt.Fprintln(out)
		for _, n := range t.notes {
			fmt.Fprintln(out, "- "+n)
		}
	}
}
