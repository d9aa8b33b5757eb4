package main

import (
	"fmt"
	"runtime"
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
		"for %s, linger 0, Produce call to ack. Medians of %d runs with the targets alternating, every "+
		"target instance fresh per run and partition count; ratios are medians of run-by-run ratios. "+
		"kfake and the null sink run inside the bench process, drover-broker is a standalone subprocess "+
		"(no coordinator).",
		cfg.size, cfg.records, cfg.latRate, cfg.latDur, cfg.runs)
	if cfg.clusterDesc != "" {
		fmt.Fprintf(&b, " drover-3brokers is %s: topics created with RF=3 (min.insync.replicas=2) through "+
			"CreateTopics, produced with acks=all (idempotent); its \"vs single broker\" column is the ratio "+
			"to drover-broker's figure of the same run (produce: acks=all RF=3 against acks=1; consume against consume).", cfg.clusterDesc)
	}
	fmt.Fprintf(&b, " Load average (1/5/15 min; the machine is shared) at the start: %s, at the end: %s.\n\n",
		cfg.loadStart, cfg.loadEnd)
	b.WriteString("| target | scenario | MB/s | records/s | vs kfake | vs null | vs single broker | p50 | p99 |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
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
	singleCell := func(k key) string {
		ref, ok := singleRef(k)
		if !ok {
			return ""
		}
		if r, n := st.ratio(k, ref); n > 0 {
			return fmt.Sprintf("%.2fx", r)
		}
		return ""
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
				fmt.Fprintf(&b, "| %s | %s | %.1f | %.0f | %s | %s | %s | | |\n", t.name, scn,
					results.Median(mb), results.Median(rps), ratioCell(k, "kfake"), ratioCell(k, "null"), singleCell(k))
			} else if runs := st.lat[k]; len(runs) > 0 {
				var p50, p99 []time.Duration
				var rate []float64
				for _, v := range runs {
					p50 = append(p50, v.p50)
					p99 = append(p99, v.p99)
					rate = append(rate, v.rate)
				}
				r := results.Median(rate)
				fmt.Fprintf(&b, "| %s | %s | %.1f | %.0f | | | | %s | %s |\n", t.name, scn,
					r*float64(cfg.size)/1e6, r, fmtMs(results.MedianDuration(p50)), fmtMs(results.MedianDuration(p99)))
			} else if err, ok := st.errs[k]; ok {
				fmt.Fprintf(&b, "| %s | %s | failed: %s | | | | | | |\n", t.name, scn, cell(err))
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
	b.WriteString(usageReport(targets, st))
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

// singleRef is, for a drover-3brokers throughput figure, the single broker's figure it is
// compared with: acks=all RF=3 produce against acks=1 produce, RF=3 consume against consume.
func singleRef(k key) (key, bool) {
	if k.target != "drover-3brokers" {
		return key{}, false
	}
	var p int
	if _, err := fmt.Sscanf(k.scenario, "produce acks=all RF=3 p=%d", &p); err == nil {
		return key{"drover-broker", fmt.Sprintf("produce acks=1 p=%d", p)}, true
	}
	if _, err := fmt.Sscanf(k.scenario, "consume RF=3 p=%d", &p); err == nil {
		return key{"drover-broker", fmt.Sprintf("consume p=%d", p)}, true
	}
	return key{}, false
}

// usageReport is the resource table of the produce windows (medians of the per-run values) and
// a measured sentence on what bounds the RF=3 figure here.
func usageReport(targets []*target, st *store) string {
	type row struct {
		target, scenario string
		tcpu, bcpu       float64 // cores
		busy, iow, other float64 // cores, machine-wide; other = busy - target - bench
		msPerMB          float64 // CPU ms (target + bench) per MB produced
		amp              float64 // bytes written by the target / bytes produced
		devMBs, devPct   float64
		procs, dev       bool
	}
	var rows []row
	for _, scn := range st.scenarios {
		if !strings.HasPrefix(scn, "produce") {
			continue
		}
		for _, t := range targets {
			var tcpu, bcpu, busy, iow, other, msPerMB, amp, devMBs, devPct []float64
			r := row{target: t.name, scenario: scn}
			for _, v := range st.thr[key{t.name, scn}] {
				u := v.use
				if u == nil || u.wall <= 0 {
					continue
				}
				w := u.wall.Seconds()
				own := u.targetCPU.Seconds() + u.benchCPU.Seconds()
				tcpu = append(tcpu, u.targetCPU.Seconds()/w)
				bcpu = append(bcpu, u.benchCPU.Seconds()/w)
				busy = append(busy, u.machBusy/w)
				iow = append(iow, u.machIOWait/w)
				other = append(other, max(0, u.machBusy-own)/w)
				msPerMB = append(msPerMB, 1e3*own/(float64(v.bytes)/1e6))
				amp = append(amp, float64(u.dirtied)/float64(v.bytes))
				devMBs = append(devMBs, float64(u.devWritten)/1e6/w)
				devPct = append(devPct, 100*u.devBusy.Seconds()/w)
				r.procs, r.dev = u.hasProcs, u.hasDev
			}
			if len(busy) == 0 {
				continue
			}
			r.tcpu, r.bcpu, r.busy, r.iow = results.Median(tcpu), results.Median(bcpu), results.Median(busy), results.Median(iow)
			r.other, r.msPerMB, r.amp = results.Median(other), results.Median(msPerMB), results.Median(amp)
			r.devMBs, r.devPct = results.Median(devMBs), results.Median(devPct)
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return ""
	}
	ncpu := runtime.NumCPU()
	n := float64(ncpu)
	var b strings.Builder
	fmt.Fprintf(&b, "Resources during the produce windows (medians of the runs; /proc; %d cores): CPU of the "+
		"target's processes (drover-3brokers: 3 brokers + 3 coordinators) and of the bench process (the "+
		"client, plus kfake or the null sink when they are the target); the whole machine's busy and iowait "+
		"CPU, and what of it was neither (other work on the shared machine, kernel work not charged to a "+
		"process); CPU-ms (target + bench) per MB produced; bytes the target's processes wrote (page cache "+
		"dirtied; every replica's copy counts) per byte produced; the log dir's device (machine-wide "+
		"counters; writeback may land after the window).\n\n", ncpu)
	b.WriteString("| target | scenario | target CPU | bench CPU | other CPU | machine busy | iowait | CPU ms/MB | written / produced | device MB/s | device busy |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	get := func(t, scn string) *row {
		for i := range rows {
			if rows[i].target == t && rows[i].scenario == scn {
				return &rows[i]
			}
		}
		return nil
	}
	for _, r := range rows {
		tcpu, amp, devMBs, devPct := "", "", "", ""
		if r.procs {
			tcpu, amp = fmt.Sprintf("%.2f", r.tcpu), fmt.Sprintf("%.2fx", r.amp)
		}
		if r.dev {
			devMBs, devPct = fmt.Sprintf("%.0f", r.devMBs), fmt.Sprintf("%.0f%%", r.devPct)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %.1f | %s | %s | %s |\n", r.target, r.scenario,
			tcpu, r.bcpu, r.other, r.busy, r.iow, r.msPerMB, amp, devMBs, devPct)
	}
	b.WriteString("\n")
	// What bounds RF=3 here, from the figures above.
	for _, r := range rows {
		var p int
		if r.target != "drover-3brokers" || !r.procs {
			continue
		}
		if _, err := fmt.Sscanf(r.scenario, "produce acks=all RF=3 p=%d", &p); err != nil {
			continue
		}
		fmt.Fprintf(&b, "- p=%d, acks=all RF=3: the 3 brokers wrote %.2fx the produced bytes (each record once "+
			"per replica, all to the same disk) and shared the machine's %d cores with the coordinators, the "+
			"client and the machine's other work: %.2f cores busy (drover processes %.2f, bench/client %.2f, "+
			"other %.2f), iowait %.2f cores, device %.0f MB/s written, busy %.0f%% of the window; %.1f CPU-ms "+
			"per produced MB.", p, r.amp, ncpu, r.busy, r.tcpu, r.bcpu, r.other, r.iow, r.devMBs, r.devPct, r.msPerMB)
		s := get("drover-broker", fmt.Sprintf("produce acks=1 p=%d", p))
		if s != nil {
			fmt.Fprintf(&b, " Single broker acks=1: wrote %.2fx; %.2f cores busy (broker %.2f, bench/client %.2f, "+
				"other %.2f), iowait %.2f, device %.0f MB/s, busy %.0f%%; %.1f CPU-ms per MB.",
				s.amp, s.busy, s.tcpu, s.bcpu, s.other, s.iow, s.devMBs, s.devPct, s.msPerMB)
		}
		cost := 0.0
		if s != nil && s.msPerMB > 0 {
			cost = r.msPerMB / s.msPerMB
			fmt.Fprintf(&b, " Per produced MB the RF=3 acks=all path cost %.1fx the CPU (drover processes + "+
				"client) of the single broker's acks=1 path.", cost)
		}
		switch {
		case r.devPct >= 50 || r.iow >= 0.2:
			b.WriteString(" The shared disk is a limit here.")
		case r.busy >= 0.85*n:
			b.WriteString(" The writes stay in the page cache within the window, so the disk is not the limit " +
				"here; the cores are saturated")
			if cost > 0 {
				fmt.Fprintf(&b, ", so on the same cores the RF=3 throughput is roughly 1/%.1f of the single broker's", cost)
			}
			b.WriteString(".")
		default:
			fmt.Fprintf(&b, " Neither the cores (%.0f%% busy) nor the device is saturated in this window.", 100*r.busy/n)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	return b.String()
}
