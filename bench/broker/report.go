package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/drover/drover/bench/internal/results"
)

type key struct{ target, scenario string }

type store struct {
	thr       map[key]map[int]throughput
	lat       map[key]map[int]latency
	errs      map[key]error
	scenarios []string // first-seen order
}

func newStore() *store {
	return &store{thr: map[key]map[int]throughput{}, lat: map[key]map[int]latency{}, errs: map[key]error{}}
}

func (s *store) seen(scn string) {
	for _, x := range s.scenarios {
		if x == scn {
			return
		}
	}
	s.scenarios = append(s.scenarios, scn)
}

func (s *store) addThr(t, scn string, run int, v throughput) {
	s.seen(scn)
	k := key{t, scn}
	if s.thr[k] == nil {
		s.thr[k] = map[int]throughput{}
	}
	s.thr[k][run] = v
}

func (s *store) addLat(t, scn string, run int, v latency) {
	s.seen(scn)
	k := key{t, scn}
	if s.lat[k] == nil {
		s.lat[k] = map[int]latency{}
	}
	s.lat[k][run] = v
}

func (s *store) fail(t, scn string, err error) {
	s.seen(scn)
	if _, ok := s.errs[key{t, scn}]; !ok {
		s.errs[key{t, scn}] = err
	}
}

// ratio is the median over runs of a/b, pairing each run of a with the same run of b.
func (s *store) ratio(a, b key) (float64, int) {
	var rs []float64
	for run, x := range s.thr[a] {
		if y, ok := s.thr[b][run]; ok && y.recsPerSec() > 0 {
			rs = append(rs, x.recsPerSec()/y.recsPerSec())
		}
	}
	return results.Median(rs), len(rs)
}

func fmtMs(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func report(cfg config, targets []*target, st *store) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", results.Stamp())
	fmt.Fprintf(&b, "One franz-go client configuration for every target: %d-byte records, no compression, "+
		"1 MiB batches, up to 1M buffered records, 5 produce requests in flight (acks=1, idempotence off) "+
		"or idempotent acks=all. Throughput: %d records per run, timed from the first Produce to the last "+
		"ack (after one warm-up record); consume reads them back with a fresh client. Latency: %d records/s "+
		"for %s, linger 0, Produce call to ack. Medians of %d runs with the targets alternating; ratios are "+
		"medians of run-by-run ratios. kfake and the null sink run inside the bench process, drover-broker "+
		"is a standalone subprocess.\n\n",
		cfg.size, cfg.records, cfg.latRate, cfg.latDur, cfg.runs)
	b.WriteString("| target | scenario | MB/s | records/s | vs kfake | vs null | p50 | p99 |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|\n")
	ratioCell := func(k key, ref string) string {
		if k.target == ref {
			return ""
		}
		r, n := st.ratio(k, key{ref, k.scenario})
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("%.2fx", r)
	}
	// Throughput rows first (in the order measured), latency rows last.
	var scns []string
	for _, pass := range []bool{false, true} {
		for _, scn := range st.scenarios {
			if strings.HasPrefix(scn, "latency") == pass {
				scns = append(scns, scn)
			}
		}
	}
	for _, scn := range scns {
		for _, t := range targets {
			k := key{t.name, scn}
			if runs := st.thr[k]; len(runs) > 0 {
				var mb, rps []float64
				for _, v := range runs {
					mb = append(mb, v.mbPerSec())
					rps = append(rps, v.recsPerSec())
				}
				fmt.Fprintf(&b, "| %s | %s | %.1f | %.0f | %s | %s | | |\n", t.name, scn,
					results.Median(mb), results.Median(rps), ratioCell(k, "kfake"), ratioCell(k, "null"))
			} else if runs := st.lat[k]; len(runs) > 0 {
				var p50, p99 []time.Duration
				var rate []float64
				for _, v := range runs {
					p50 = append(p50, v.p50)
					p99 = append(p99, v.p99)
					rate = append(rate, v.rate)
				}
				r := results.Median(rate)
				fmt.Fprintf(&b, "| %s | %s | %.1f | %.0f | | | %s | %s |\n", t.name, scn,
					r*float64(cfg.size)/1e6, r, fmtMs(results.MedianDuration(p50)), fmtMs(results.MedianDuration(p99)))
			} else if err, ok := st.errs[k]; ok {
				fmt.Fprintf(&b, "| %s | %s | failed: %s | | | | | |\n", t.name, scn, cell(err))
			}
		}
	}
	b.WriteString("\n")

	// The issues' targets, each a run-by-run ratio.
	var checks []string
	for _, p := range cfg.partitions {
		scn := fmt.Sprintf("produce acks=1 p=%d", p)
		for _, c := range []struct {
			ref    string
			target float64
		}{{"kfake", 1.0}, {"null", 0.7}} {
			if r, n := st.ratio(key{"drover-broker", scn}, key{c.ref, scn}); n > 0 {
				checks = append(checks, fmt.Sprintf("- drover-broker / %s, %s: %.2fx (target >= %.1fx, %d runs)", c.ref, scn, r, c.target, n))
			}
		}
		rf := fmt.Sprintf("produce acks=all RF=3 p=%d", p)
		if r, n := st.ratio(key{"drover-3brokers", rf}, key{"drover-broker", scn}); n > 0 {
			checks = append(checks, fmt.Sprintf("- 3 brokers %s / single broker %s: %.2fx (target >= 0.5x, %d runs)", rf, scn, r, n))
		}
		if r, n := st.ratio(key{"kfake", scn}, key{"null", scn}); n > 0 {
			checks = append(checks, fmt.Sprintf("- kfake / null, %s: %.2fx (reference)", scn, r))
		}
	}
	if len(checks) > 0 {
		b.WriteString(strings.Join(checks, "\n") + "\n\n")
	}
	for _, t := range targets {
		if t.unavailable != nil {
			fmt.Fprintf(&b, "%s unavailable: %s\n\n", t.name, cell(t.unavailable))
		}
	}
	return b.String()
}

// cell keeps an error on one table-safe line.
func cell(err error) string {
	s := strings.NewReplacer("|", "/", "\n", " ").Replace(err.Error())
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
