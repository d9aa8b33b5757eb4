// Command fanout measures SSH fan-out on N simulated hosts (loopback sshd processes, see
// bench/fanout/farm): the floor, a minimal Go client that opens one session per host and runs
// `true`, and optionally any controller command (drover) timed the same way. See bench/README.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover/drover/bench/fanout/farm"
	"github.com/drover/drover/bench/internal/results"
)

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

type sample struct {
	wall   time.Duration
	rss    int64   // peak RSS in KiB (VmHWM)
	phases []phase // droverapply's own per-phase wall times, when it printed them
}

// phase is one engine phase of a droverapply run: wall seconds from its start to its end, and the
// part of it spent in the controller-side Prepare before any host is touched.
type phase struct {
	name        string
	total, prep float64
}

// parsePhases reads the "droverapply phases: connect=T/P ..." line from a run's log.
func parsePhases(logPath string) []phase {
	b, err := os.ReadFile(logPath)
	if err != nil {
		return nil
	}
	var out []phase
	for _, l := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(l, "droverapply phases:")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			name, v, _ := strings.Cut(f, "=")
			t, p, _ := strings.Cut(v, "/")
			tf, _ := strconv.ParseFloat(t, 64)
			pf, _ := strconv.ParseFloat(p, 64)
			out = append(out, phase{strings.ReplaceAll(name, "_", " "), tf, pf})
		}
	}
	return out
}

func main() {
	var (
		nArg        = flag.String("n", "50,200,500", "comma-separated host counts")
		runs        = flag.Int("runs", 3, "runs per host count (the table shows medians)")
		concurrency = flag.Int("concurrency", 50, "floor: connections in flight")
		droverCmd   = flag.String("drover", "", "command timed like the floor for each N, run by /bin/sh -c; "+
			"{inventory} {ssh_config} {known_hosts} {key} {n} {forks} {dir} are substituted")
		setupCmd = flag.String("drover-setup", "", "command run once per N before the measured runs (not timed), e.g. a first converge; "+
			"same substitutions as -drover")
		apply = flag.Bool("apply", false, "measure drover's real apply path: build bench/fanout/droverapply and use it as -drover "+
			"(the no-op re-run) and -drover-setup (seed + first converge)")
		binDir  = flag.String("bin-dir", "bin", "with -apply: where drover-agent and drover-broker are (make build)")
		out     = flag.String("out", "bench/RESULTS.md", "markdown file whose \"Fan-out\" section is replaced (empty: stdout only)")
		timeout = flag.Duration("timeout", 10*time.Minute, "limit for one measured command")
		serve   = flag.Int("serve", 0, "start a farm of this many hosts, print its files and keep it until Ctrl-C")
		keep    = flag.Bool("keep", false, "keep the farm directory (keys, configs, sshd logs) after stopping")
		child   = flag.String("floor-child", "", "internal: run the floor on this host list and exit")
	)
	flag.Parse()
	if *child != "" {
		os.Exit(floorMain(*child, *concurrency))
	}
	var ns []int
	for _, s := range strings.Split(*nArg, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bad -n %q\n", *nArg)
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	if *runs < 1 || *concurrency < 1 {
		fmt.Fprintln(os.Stderr, "-runs and -concurrency must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *serve > 0 {
		os.Exit(serveFarm(ctx, *serve, *keep))
	}
	d := droverSpec{cmd: *droverCmd, setup: *setupCmd, shown: *droverCmd}
	if *apply {
		var err error
		if d, err = buildApply(*binDir); err != nil {
			logf("-apply: %v", err)
			os.Exit(1)
		}
		defer os.RemoveAll(filepath.Dir(d.bin))
	}
	os.Exit(bench(ctx, ns, *runs, *concurrency, d, *out, *timeout, *keep))
}

func serveFarm(ctx context.Context, n int, keep bool) int {
	f, err := farm.Start(ctx, n, farm.Options{})
	if err != nil {
		logf("farm: %v", err)
		return 1
	}
	f.Keep = keep
	defer f.Stop()
	cf, err := farm.WriteClientFiles(filepath.Join(f.Dir, "client"), f.Hosts)
	if err != nil {
		logf("%v", err)
		return 1
	}
	fmt.Printf("%d hosts up\ninventory:   %s\nssh_config:  %s\nknown_hosts: %s\nkey:         %s\ntry: ssh -F %s %s true\nCtrl-C stops every sshd.\n",
		n, cf.Inventory, cf.SSHConfig, cf.KnownHosts, f.KeyFile, cf.SSHConfig, f.Hosts[0].Name)
	<-ctx.Done()
	return 0
}

// droverSpec is what the drover column runs: cmd timed per run, setup once per N before the runs.
type droverSpec struct {
	cmd, setup string
	shown      string // for the report
	note       string // extra report paragraph
	bin        string // built droverapply, if any
}

// buildApply builds bench/fanout/droverapply into a temporary directory, so the measured process
// is the controller itself and no compile is timed.
func buildApply(binDir string) (droverSpec, error) {
	abs, err := filepath.Abs(binDir)
	if err != nil {
		return droverSpec{}, err
	}
	for _, b := range []string{"drover-agent", "drover-broker"} {
		if _, err := os.Stat(filepath.Join(abs, b)); err != nil {
			return droverSpec{}, fmt.Errorf("%v (run `make build` first)", err)
		}
	}
	dir, err := os.MkdirTemp("", "droverapply-")
	if err != nil {
		return droverSpec{}, err
	}
	bin := filepath.Join(dir, "droverapply")
	cmd := exec.Command("go", "build", "-o", bin, "./bench/fanout/droverapply")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return droverSpec{}, fmt.Errorf("go build ./bench/fanout/droverapply: %v: %s", err, out)
	}
	args := " -i {inventory} -F {ssh_config} -forks {forks} -bin-dir " + abs
	return droverSpec{
		bin: bin, cmd: bin + args, setup: bin + args + " -setup",
		shown: "bench/fanout/droverapply -i {inventory} -F {ssh_config} -forks {forks}",
		note: "drover: `bench/fanout/droverapply`, drover's real controller path (the `provisioner/sshx` pool, the " +
			"`provisioner/engine` Runner with a per-host Pipeline of Connect and Converge (agent check, artifact check and " +
			"apply in one session when nothing is missing, as `drover provision` does), the plain display and the run " +
			"log, forks = the floor's concurrency) applying `plan.Tasks` of a broker (3-coordinator cluster, heap 256m) to " +
			"every host, the agent running with `--root` = the host's temporary root. The farm has no systemd, so the unit " +
			"task is a file task writing the same unit bytes to the same path and the service task a file task of the same " +
			"size; everything else is the broker's plan as is (group, user, 4 directories, broker.id, the artifact " +
			"task checking the 17 MB drover-broker binary's link and store file, server.properties, broker.env). Before the measured " +
			"runs, once per N and not timed: the roots get /etc/passwd and /etc/group (root, drover-broker), the agent and " +
			"broker binaries hard-linked into their stores, then a first converge. The timed run is the no-op re-run " +
			"(it must report 0 changed), what the floor's single `true` per host is compared with: per host one SSH " +
			"connection and one session (guarded `drover-agent apply`).",
	}, nil
}

func bench(ctx context.Context, ns []int, runs, concurrency int, d droverSpec, out string, timeout time.Duration, keep bool) int {
	droverCmd := d.cmd
	load0 := loadavg()
	maxN := slices.Max(ns)
	t0 := time.Now()
	f, err := farm.Start(ctx, maxN, farm.Options{})
	if err != nil {
		logf("farm: %v", err)
		return 1
	}
	f.Keep = keep
	defer f.Stop()
	logf("farm: %d sshd up in %.1fs under %s", maxN, time.Since(t0).Seconds(), f.Dir)

	self, err := os.Executable()
	if err != nil {
		logf("%v", err)
		return 1
	}
	// Per N: the client files for its first N hosts and the floor's host list.
	files := map[int]farm.ClientFiles{}
	for _, n := range ns {
		cf, err := farm.WriteClientFiles(filepath.Join(f.Dir, "client", strconv.Itoa(n)), f.Hosts[:n])
		if err != nil {
			logf("%v", err)
			return 1
		}
		if err := writeFloorList(filepath.Join(cf.Dir, "floor.json"), f, f.Hosts[:n]); err != nil {
			logf("%v", err)
			return 1
		}
		files[n] = cf
	}

	if d.setup != "" {
		for _, n := range ns {
			cf := files[n]
			t := time.Now()
			cmdline := expand(d.setup, cf, f, n, concurrency)
			if _, err := measure(ctx, timeout, filepath.Join(cf.Dir, "drover-setup.log"), "/bin/sh", "-c", "exec "+cmdline); err != nil {
				logf("N=%d drover setup failed: %v", n, err)
				return 1
			}
			logf("N=%-4d drover setup (not timed) %.1fs", n, time.Since(t).Seconds())
		}
	}

	floor := map[int]map[int]sample{}
	drover := map[int]map[int]sample{}
	droverErr := map[int]error{}
	for _, n := range ns {
		floor[n], drover[n] = map[int]sample{}, map[int]sample{}
	}
	for r := 0; r < runs; r++ {
		for _, n := range ns {
			cf := files[n]
			floorRun := func() {
				s, err := measure(ctx, timeout, filepath.Join(cf.Dir, "floor.log"), self,
					"-floor-child", filepath.Join(cf.Dir, "floor.json"), "-concurrency", strconv.Itoa(concurrency))
				if err != nil {
					logf("run %d N=%d floor failed: %v", r+1, n, err)
					return
				}
				floor[n][r] = s
				logf("run %d/%d N=%-4d floor  %6.2fs  peak RSS %s", r+1, runs, n, s.wall.Seconds(), mib(s.rss))
			}
			droverRun := func() {
				if droverCmd == "" || droverErr[n] != nil && r > 0 && len(drover[n]) == 0 {
					return
				}
				cmdline := expand(droverCmd, cf, f, n, concurrency)
				// exec: the measured process is the command itself, not the shell.
				logPath := filepath.Join(cf.Dir, "drover.log")
				s, err := measure(ctx, timeout, logPath, "/bin/sh", "-c", "exec "+cmdline)
				s.phases = parsePhases(logPath)
				if err != nil {
					logf("run %d N=%d drover failed: %v", r+1, n, err)
					if droverErr[n] == nil {
						droverErr[n] = err
					}
					return
				}
				drover[n][r] = s
				logf("run %d/%d N=%-4d drover %6.2fs  peak RSS %s", r+1, runs, n, s.wall.Seconds(), mib(s.rss))
			}
			// Alternate who goes first so drift on a shared machine hits both alike.
			if r%2 == 0 {
				floorRun()
				droverRun()
			} else {
				droverRun()
				floorRun()
			}
			if ctx.Err() != nil {
				logf("interrupted: %s not written", out)
				return 130
			}
		}
	}

	body := report(ns, runs, concurrency, d, floor, drover, droverErr, load0, loadavg())
	fmt.Println("## Fan-out")
	fmt.Println()
	fmt.Print(body)
	if out != "" {
		if err := results.MergeSection(out, "Fan-out", body); err != nil {
			logf("%v", err)
			return 1
		}
		logf("wrote the Fan-out section of %s", out)
	}
	return 0
}

func expand(tmpl string, cf farm.ClientFiles, f *farm.Farm, n, forks int) string {
	return strings.NewReplacer(
		"{inventory}", cf.Inventory, "{ssh_config}", cf.SSHConfig, "{known_hosts}", cf.KnownHosts,
		"{key}", f.KeyFile, "{n}", strconv.Itoa(n), "{forks}", strconv.Itoa(forks), "{dir}", cf.Dir,
	).Replace(tmpl)
}

// measure runs argv as a child in its own process group and returns its wall time and peak RSS.
//
// Peak RSS is the child's VmHWM (the high-water mark of its own address space), sampled every 5 ms
// until it exits; only growth in its last few milliseconds could be missed. wait4's ru_maxrss is
// not used: exec stores the high-water mark of the address space it replaces, which for a child of
// this process is a copy of the bench's own (it reads ~25 MiB for any child here).
func measure(ctx context.Context, timeout time.Duration, logPath string, argv ...string) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	logFile, err := os.Create(logPath)
	if err != nil {
		return sample{}, err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return sample{}, err
	}
	done := make(chan struct{})
	peak := make(chan int64, 1)
	go func() { peak <- pollHWM(cmd.Process.Pid, done) }()
	err = cmd.Wait()
	wall := time.Since(start)
	close(done)
	hwm := <-peak
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w after %s", ctx.Err(), wall.Round(time.Millisecond))
		}
		return sample{}, fmt.Errorf("%v: %s", err, tail(logPath))
	}
	if hwm == 0 {
		return sample{}, errors.New("could not read the child's VmHWM")
	}
	return sample{wall: wall, rss: hwm}, nil
}

// pollHWM returns the largest VmHWM (KiB) seen for pid until done is closed.
func pollHWM(pid int, done <-chan struct{}) int64 {
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	var peak int64
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if v := readHWM(path); v > peak {
			peak = v
		}
		select {
		case <-done:
			return peak
		case <-t.C:
		}
	}
}

func readHWM(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(b, []byte("VmHWM:"))
	if !ok {
		return 0 // a zombie has no address space left
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(line)), " kB"), 10, 64)
	return v
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	b = bytes.TrimSpace(b)
	if len(b) > 500 {
		b = b[len(b)-500:]
	}
	if len(b) == 0 {
		return "(no output)"
	}
	return strings.ReplaceAll(string(b), "\n", " / ")
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func medians(m map[int]sample) (time.Duration, int64, bool) {
	if len(m) == 0 {
		return 0, 0, false
	}
	var w []time.Duration
	var r []float64
	for _, s := range m {
		w = append(w, s.wall)
		r = append(r, float64(s.rss))
	}
	return results.MedianDuration(w), int64(results.Median(r)), true
}

func report(ns []int, runs, concurrency int, d droverSpec, floor, drover map[int]map[int]sample, droverErr map[int]error, load0, load1 string) string {
	droverCmd := d.cmd
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", results.Stamp())
	fmt.Fprintf(&b, "Load average (1/5/15 min) at start: %s; at end: %s. The 2 cores are shared with other work.\n\n", load0, load1)
	fmt.Fprintf(&b, "N simulated hosts, each a loopback sshd (own port, host key, root dir and HOME; no PAM, "+
		"motd or DNS) on the same machine as the controller, so absolute seconds mostly measure sshd. "+
		"Floor: a minimal Go program (x/crypto/ssh) opening one connection and one session running `true` per "+
		"host, %d in flight. Wall time of the whole process, peak RSS is its VmHWM sampled every 5 ms. Medians of %d runs; "+
		"ratios are medians of run-by-run ratios.\n\n", concurrency, runs)
	if d.note != "" {
		fmt.Fprintf(&b, "%s\n\n", d.note)
	} else if droverCmd != "" {
		fmt.Fprintf(&b, "drover: `%s`\n\n", strings.ReplaceAll(d.shown, "|", "\\|"))
	}
	b.WriteString("| N | floor s | floor peak RSS | drover s | drover peak RSS | drover / floor |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range ns {
		fw, fr, fok := medians(floor[n])
		dw, dr, dok := medians(drover[n])
		cells := []string{strconv.Itoa(n), "failed", "", "", "", ""}
		if fok {
			cells[1], cells[2] = fmt.Sprintf("%.2f", fw.Seconds()), mib(fr)
		}
		switch {
		case dok:
			cells[3], cells[4] = fmt.Sprintf("%.2f", dw.Seconds()), mib(dr)
			var rs []float64
			for r, s := range drover[n] {
				if f, ok := floor[n][r]; ok {
					rs = append(rs, s.wall.Seconds()/f.wall.Seconds())
				}
			}
			if len(rs) > 0 {
				cells[5] = fmt.Sprintf("%.2fx", results.Median(rs))
			}
		case droverCmd == "":
			cells[3] = "not run"
		case droverErr[n] != nil:
			cells[3] = "failed"
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	b.WriteString("\n")
	if len(ns) > 1 {
		lo, hi := slices.Min(ns), slices.Max(ns)
		for _, c := range []struct {
			name string
			m    map[int]map[int]sample
		}{{"floor", floor}, {"drover", drover}} {
			_, rlo, ok1 := medians(c.m[lo])
			_, rhi, ok2 := medians(c.m[hi])
			if ok1 && ok2 {
				fmt.Fprintf(&b, "- %s memory growth N=%d -> %d: %s -> %s, %.0f KiB per added host\n",
					c.name, lo, hi, mib(rlo), mib(rhi), float64(rhi-rlo)/float64(hi-lo))
			}
		}
	}
	b.WriteString("- targets (issue 9): drover <= 1.3x the floor, drover peak memory < 500 MB at N=500\n\n")
	b.WriteString(phaseTable(ns, floor, drover))
	for _, n := range ns {
		if err := droverErr[n]; err != nil {
			msg := strings.ReplaceAll(err.Error(), "|", "/")
			if len(msg) > 300 {
				msg = msg[:300] + "..."
			}
			fmt.Fprintf(&b, "drover at N=%d failed: %s\n\n", n, msg)
		}
	}
	return b.String()
}

// loadavg is /proc/loadavg's 1, 5 and 15 minute figures.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// phaseTable is "where drover's time goes": median wall seconds of each engine phase (the part in
// the controller-side Prepare in parentheses) next to the floor, when droverapply reported them.
func phaseTable(ns []int, floor, drover map[int]map[int]sample) string {
	var names []string
	seen := map[string]bool{}
	for _, n := range ns {
		for _, s := range drover[n] {
			for _, p := range s.phases {
				if !seen[p.name] {
					seen[p.name] = true
					names = append(names, p.name)
				}
			}
		}
	}
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("Where drover's time goes: median wall seconds of each engine phase, a barrier across all hosts " +
		"(in parentheses: the controller-side Prepare before any host is touched), next to the whole floor.\n\n")
	b.WriteString("| N | floor s | " + strings.Join(names, " | ") + " | drover s |\n|---:|---:|" + strings.Repeat("---:|", len(names)+1) + "\n")
	for _, n := range ns {
		fw, _, _ := medians(floor[n])
		dw, _, _ := medians(drover[n])
		cells := []string{strconv.Itoa(n), fmt.Sprintf("%.2f", fw.Seconds())}
		for _, name := range names {
			var tot, prep []float64
			for _, s := range drover[n] {
				for _, p := range s.phases {
					if p.name == name {
						tot, prep = append(tot, p.total), append(prep, p.prep)
					}
				}
			}
			c := fmt.Sprintf("%.2f", results.Median(tot))
			if mp := results.Median(prep); mp >= 0.005 {
				c += fmt.Sprintf(" (%.2f)", mp)
			}
			cells = append(cells, c)
		}
		cells = append(cells, fmt.Sprintf("%.2f", dw.Seconds()))
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	b.WriteString("\n")
	return b.String()
}
