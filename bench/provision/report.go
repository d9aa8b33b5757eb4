package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/drover/drover/bench/internal/results"
)

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// median over the runs that succeeded; ok=false when none did.
func median(rs []runResult, pick func(runResult) time.Duration) (time.Duration, bool) {
	var ds []time.Duration
	for _, r := range rs {
		if r.err == nil {
			ds = append(ds, pick(r))
		}
	}
	if len(ds) == 0 {
		return 0, false
	}
	return results.MedianDuration(ds), true
}

// ratio is the median of run-by-run ratios num/den (pairs where both succeeded).
func ratio(num, den []runResult, pick func(runResult) time.Duration) (float64, int) {
	var xs []float64
	for i := range min(len(num), len(den)) {
		if num[i].err == nil && den[i].err == nil && pick(den[i]) > 0 {
			xs = append(xs, pick(num[i]).Seconds()/pick(den[i]).Seconds())
		}
	}
	return results.Median(xs), len(xs)
}

func verdict(x, target float64) string {
	if x >= target {
		return "met"
	}
	return "MISSED"
}

func report(c *config, res map[string][]runResult, load0, load1 string) string {
	fresh := func(r runResult) time.Duration { return r.fresh.wall }
	noop := func(r runResult) time.Duration { return r.noop.wall }
	noopEngine := func(r runResult) time.Duration { return r.noop.engine }
	freshEngine := func(r runResult) time.Duration { return r.fresh.engine }

	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", results.Stamp())
	fmt.Fprintf(&b, "Load average (1/5/15 min) at start: %s; at end: %s. The 2 cores are shared with other work.\n\n", load0, load1)
	fmt.Fprintf(&b, "`go run ./bench/provision -runs %d`: the local fleet (`test/fleet`, FLEET_ID=%s, %d systemd-nspawn "+
		"nodes with real sshd and systemd, the python3 rootfs for both tools), `%s` (3 coordinators, 3 brokers), "+
		"forks %d for both. Every variant starts from bare nodes: the fleet is torn down and booted again before "+
		"it (not timed), then (1) the fresh converge and (2) a no-op re-run are timed as whole processes. "+
		"Variants rotate their order in each run; medians of %d runs; ratios are medians of run-by-run ratios.\n\n",
		c.runs, c.fleetID, c.hosts, c.inventory, c.forks, c.runs)
	b.WriteString("- Ansible: ansible-core (Debian's package), `bench/ansible/site.yml` with pipelining on, gather_facts off, " +
		"interpreter discovery off, Ansible's default ssh ControlMaster/ControlPersist (a fresh control path per run), " +
		"strict host keys from the fleet's known_hosts. Same users/groups, directories, myid/broker.id, binaries " +
		"(content-addressed in /opt/drover/store with the /opt/drover/bin symlinks), configs, environment files and units, " +
		"all rendered by drover's own `provisioner/plan`; coordinators started together (`no_block`) then port 2181 " +
		"waited for, then brokers and port 9092. Not done by the playbook: drover's id-change refusal and its wait " +
		"for quorum / broker registration (it waits for the ports only), and drover's agent upload.\n")
	b.WriteString("- Verified after every fresh converge: `drover health` (quorum, brokers registered, partitions, " +
		"produce/consume canary) passes for both tools; after Ansible, `drover provision --check` finds nothing to " +
		"change but its own agent (same bytes, modes, owners; services enabled and active); every no-op re-run reports 0 changed.\n\n")

	b.WriteString("| tool | fresh converge s | no-op re-run s |\n|---|---:|---:|\n")
	for _, v := range []string{"ansible", "drover", "drover-full"} {
		rs, ok := res[v]
		if !ok {
			continue
		}
		cells := []string{variantTitle[v], "failed", "failed"}
		if d, ok := median(rs, fresh); ok {
			cells[1] = secs(d)
		}
		if d, ok := median(rs, noop); ok {
			cells[2] = secs(d)
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	for _, v := range []string{"drover", "drover-full"} {
		if res["ansible"] == nil || res[v] == nil {
			continue
		}
		rf, n1 := ratio(res["ansible"], res[v], fresh)
		rn, n2 := ratio(res["ansible"], res[v], noop)
		if n1 == 0 || n2 == 0 {
			continue
		}
		fmt.Fprintf(&b, "| **Ansible / %s** | **%.1fx** (target >= 6x: %s) | **%.1fx** (target >= 20x: %s) |\n",
			v, rf, verdict(rf, 6), rn, verdict(rn, 20))
	}
	b.WriteString("\n")

	// Issue 4: the no-op second run of drover on 6 fleet hosts.
	b.WriteString("Issue 4, drover's no-op second run on the 6 fleet hosts (target < 1 s): ")
	var parts []string
	for _, v := range []string{"drover", "drover-full"} {
		rs := res[v]
		e, ok1 := median(rs, noopEngine)
		w, ok2 := median(rs, noop)
		if !ok1 || !ok2 {
			continue
		}
		what := "`--skip-health`"
		if v == "drover-full" {
			what = "with the health check + canary"
		}
		parts = append(parts, fmt.Sprintf("%s: engine (recap line `6 hosts, 0 changed, exit 0, X`) **%.3f s**, whole command %.3f s", what, e.Seconds(), w.Seconds()))
	}
	b.WriteString(strings.Join(parts, "; ") + ".\n\n")

	b.WriteString("<details><summary>every run</summary>\n\n")
	b.WriteString("| run | tool | fresh s | fresh engine s | no-op s | no-op engine s | verified |\n|---:|---|---:|---:|---:|---:|---|\n")
	for r := range c.runs {
		for _, v := range c.variants {
			if r >= len(res[v]) {
				continue
			}
			x := res[v][r]
			if x.err != nil {
				msg := strings.ReplaceAll(x.err.Error(), "|", "/")
				if len(msg) > 300 {
					msg = msg[:300] + "..."
				}
				fmt.Fprintf(&b, "| %d | %s | failed: %s | | | | |\n", r+1, v, msg)
				continue
			}
			fe, ne := "", ""
			if v != "ansible" {
				fe, ne = fmt.Sprintf("%.3f", freshEngine(x).Seconds()), fmt.Sprintf("%.3f", noopEngine(x).Seconds())
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s |\n", r+1, v, secs(x.fresh.wall), fe, secs(x.noop.wall), ne,
				strings.ReplaceAll(orOK(x.verify), "|", "/"))
		}
	}
	b.WriteString("\n</details>\n")
	return b.String()
}
