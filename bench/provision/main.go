// Command provision measures `drover provision` against an Ansible playbook doing the same work
// (bench/ansible/site.yml) on the same local fleet (test/fleet, python rootfs for both), alternating
// the tools inside each run, each from bare nodes: (1) fresh converge, (2) no-op re-run. It also
// gives issue 4's figure, the wall time of drover's no-op second run. See bench/README.md.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover/drover/bench/internal/results"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[provision %s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

type config struct {
	runs      int
	fleetID   string
	hosts     int
	inventory string
	binDir    string
	forks     int
	variants  []string
	timeout   time.Duration
	work      string
	sshConfig string
	ansInv    string
	keep      bool
}

// sample is one timed command.
type sample struct {
	wall    time.Duration // the whole process
	engine  time.Duration // drover: the recap line's duration (0 for Ansible)
	changed int
}

// runResult is one variant in one run.
type runResult struct {
	fresh, noop sample
	verify      string // "" ok, else what failed
	err         error
}

var variantTitle = map[string]string{
	"ansible":     "Ansible (`ansible-playbook bench/ansible/site.yml`)",
	"drover":      "drover provision --skip-health",
	"drover-full": "drover provision (with health check + canary)",
}

func main() {
	var c config
	var variants string
	flag.IntVar(&c.runs, "runs", 3, "runs (each runs every variant from bare nodes; the table shows medians)")
	flag.StringVar(&c.fleetID, "fleet-id", "3", "FLEET_ID of the local fleet to boot and tear down (it is destroyed between variants)")
	flag.IntVar(&c.hosts, "hosts", 6, "fleet size (the inventory's hosts must exist in it)")
	flag.StringVar(&c.inventory, "i", "inventories/local/inventory.yml", "drover inventory")
	flag.StringVar(&c.binDir, "bin-dir", "bin", "drover, drover-agent, drover-coordinator, drover-broker")
	flag.IntVar(&c.forks, "forks", 10, "forks for both tools (>= host count)")
	flag.StringVar(&variants, "variants", "drover,drover-full,ansible", "what to measure: drover (--skip-health), drover-full, ansible")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Minute, "limit for one command")
	out := flag.String("out", "bench/RESULTS.md", "markdown file whose \"Provisioning\" section is replaced (empty: stdout only)")
	flag.BoolVar(&c.keep, "keep", false, "leave the last fleet up")
	render := flag.String("render", "", "only write the Ansible inventory and files for the running fleet into `DIR`, print the command and exit")
	flag.Parse()
	for _, v := range strings.Split(variants, ",") {
		v = strings.TrimSpace(v)
		if variantTitle[v] == "" {
			fmt.Fprintf(os.Stderr, "unknown variant %q\n", v)
			os.Exit(2)
		}
		c.variants = append(c.variants, v)
	}
	if *render != "" {
		os.Exit(renderOnly(&c, *render))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, &c, *out))
}

func fleetSSHConfig(c *config) string {
	stateRoot := os.Getenv("FLEET_STATE_ROOT")
	if stateRoot == "" {
		stateRoot = "/run/drover-fleet"
	}
	return filepath.Join(stateRoot, c.fleetID, "ssh_config")
}

// renderOnly writes the playbook's inventory for a fleet that is already up (to run Ansible by hand).
func renderOnly(c *config, dir string) int {
	dir, _ = filepath.Abs(dir)
	inv, err := renderAnsible(dir, c.inventory, fleetSSHConfig(c), c.binDir)
	if err != nil {
		logf("%v", err)
		return 1
	}
	cfg, _ := filepath.Abs("bench/ansible/ansible.cfg")
	fmt.Printf("ANSIBLE_CONFIG=%s ansible-playbook -i %s bench/ansible/site.yml\n", cfg, inv)
	return 0
}

func run(ctx context.Context, c *config, out string) int {
	if os.Geteuid() != 0 {
		logf("needs root (the fleet is systemd-nspawn)")
		return 1
	}
	for _, b := range []string{"drover", "drover-agent", "drover-coordinator", "drover-broker"} {
		if _, err := os.Stat(filepath.Join(c.binDir, b)); err != nil {
			logf("%v (run `make build` first)", err)
			return 1
		}
	}
	if contains(c.variants, "ansible") {
		if err := ensureAnsible(ctx); err != nil {
			logf("ansible: %v", err)
			return 1
		}
	}
	var err error
	if c.work, err = os.MkdirTemp("", "drover-bench-provision-"); err != nil {
		logf("%v", err)
		return 1
	}
	defer os.RemoveAll(c.work)
	c.sshConfig = fleetSSHConfig(c)
	load0 := loadavg()
	logf("load average at start: %s", load0)

	res := map[string][]runResult{}
	for r := 0; r < c.runs; r++ {
		// Rotate who goes first so drift on a shared machine hits every variant alike.
		order := append(append([]string(nil), c.variants[r%len(c.variants):]...), c.variants[:r%len(c.variants)]...)
		for _, v := range order {
			if ctx.Err() != nil {
				logf("interrupted")
				fleet(context.Background(), c, "down")
				return 130
			}
			rr := measureVariant(ctx, c, v, r)
			if rr.err != nil {
				logf("run %d %s: %v", r+1, v, rr.err)
			} else {
				logf("run %d/%d %-11s fresh %6.2fs  no-op %6.2fs (engine %.3fs)  verify: %s", r+1, c.runs, v,
					rr.fresh.wall.Seconds(), rr.noop.wall.Seconds(), rr.noop.engine.Seconds(), orOK(rr.verify))
			}
			res[v] = append(res[v], rr)
		}
	}
	if !c.keep {
		fleet(context.Background(), c, "down")
	}
	load1 := loadavg()
	body := report(c, res, load0, load1)
	fmt.Println("## Provisioning")
	fmt.Println()
	fmt.Print(body)
	if out != "" {
		if err := results.MergeSection(out, "Provisioning", body); err != nil {
			logf("%v", err)
			return 1
		}
		logf("wrote the Provisioning section of %s", out)
	}
	return 0
}

func orOK(s string) string {
	if s == "" {
		return "ok"
	}
	return s
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// ensureAnsible installs Debian's ansible-core when ansible-playbook is missing.
func ensureAnsible(ctx context.Context) error {
	if _, err := exec.LookPath("ansible-playbook"); err == nil {
		return nil
	}
	logf("installing ansible-core (Debian package)")
	inst := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-q", "ansible-core")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install ansible-core: %v: %s", err, tailStr(string(out), 500))
		}
		return nil
	}
	if inst() != nil {
		if out, err := exec.CommandContext(ctx, "apt-get", "update", "-q").CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get update: %v: %s", err, tailStr(string(out), 500))
		}
		if err := inst(); err != nil {
			return err
		}
	}
	_, err := exec.LookPath("ansible-playbook")
	return err
}

// fleet runs test/fleet/fleet.sh with the python rootfs (both tools get identical hosts).
func fleet(ctx context.Context, c *config, args ...string) error {
	cmd := exec.CommandContext(ctx, "test/fleet/fleet.sh", args...)
	cmd.Env = append(os.Environ(), "FLEET_ID="+c.fleetID, "FLEET_PYTHON=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("fleet.sh %s: %v: %s", strings.Join(args, " "), err, tailStr(string(out), 800))
	}
	return nil
}

// measureVariant boots a bare fleet (not timed), then times the fresh converge, verifies the
// cluster, and times the no-op re-run.
func measureVariant(ctx context.Context, c *config, v string, r int) (rr runResult) {
	_ = fleet(ctx, c, "down")
	t0 := time.Now()
	if err := fleet(ctx, c, "up", strconv.Itoa(c.hosts)); err != nil {
		rr.err = err
		return
	}
	logf("run %d %s: bare fleet of %d up in %.1fs (not timed)", r+1, v, c.hosts, time.Since(t0).Seconds())
	if v == "ansible" && c.ansInv == "" {
		inv, err := renderAnsible(filepath.Join(c.work, "ansible"), c.inventory, c.sshConfig, c.binDir)
		if err != nil {
			rr.err = fmt.Errorf("render the Ansible inventory: %w", err)
			return
		}
		c.ansInv = inv
	}
	tag := fmt.Sprintf("%s-run%d", v, r+1)
	var err error
	if rr.fresh, err = timed(ctx, c, v, tag+"-fresh"); err != nil {
		rr.err = fmt.Errorf("fresh converge: %w", err)
		return
	}
	rr.verify = verify(ctx, c, v, tag)
	if rr.noop, err = timed(ctx, c, v, tag+"-noop"); err != nil {
		rr.err = fmt.Errorf("no-op re-run: %w", err)
		return
	}
	if rr.noop.changed != 0 {
		rr.verify = strings.TrimPrefix(rr.verify+"; ", "; ") + fmt.Sprintf("no-op re-run reported %d changed", rr.noop.changed)
	}
	return
}

func (c *config) droverArgs(sub string, extra ...string) []string {
	return append([]string{filepath.Join(c.binDir, "drover"), sub, "-i", c.inventory, "-F", c.sshConfig,
		"--forks", strconv.Itoa(c.forks), "--bin-dir", c.binDir}, extra...)
}

// timed runs one converge of variant v and returns its wall time (and drover's recap figures).
func timed(ctx context.Context, c *config, v, tag string) (sample, error) {
	logPath := filepath.Join(c.work, tag+".log")
	var argv, env []string
	switch v {
	case "drover":
		argv = c.droverArgs("provision", "--progress", "plain", "--skip-health")
	case "drover-full":
		argv = c.droverArgs("provision", "--progress", "plain")
	case "ansible":
		// A fresh ControlPath dir per run: no run inherits the previous run's ssh masters
		// (ControlPersist=60s), as drover opens fresh connections on every run too.
		cp, err := os.MkdirTemp(c.work, "cp-")
		if err != nil {
			return sample{}, err
		}
		defer closeMasters(cp)
		abs, _ := filepath.Abs("bench/ansible/ansible.cfg")
		env = []string{"ANSIBLE_CONFIG=" + abs, "ANSIBLE_SSH_CONTROL_PATH_DIR=" + cp, "ANSIBLE_FORKS=" + strconv.Itoa(c.forks),
			"ANSIBLE_LOCAL_TEMP=" + filepath.Join(c.work, "ansible-tmp")}
		argv = []string{"ansible-playbook", "-i", c.ansInv, "bench/ansible/site.yml"}
	}
	out, wall, err := runLogged(ctx, c.timeout, logPath, env, argv...)
	if err != nil {
		return sample{}, fmt.Errorf("%v (log %s): %s", err, logPath, tailStr(out, 600))
	}
	s := sample{wall: wall}
	if v == "ansible" {
		s.changed, err = ansibleRecap(out)
	} else {
		s.engine, s.changed, err = droverRecap(out)
	}
	if err != nil {
		return s, fmt.Errorf("%v (log %s)", err, logPath)
	}
	return s, nil
}

// runLogged runs argv with its output in logPath and returns the output and the wall time.
func runLogged(ctx context.Context, timeout time.Duration, logPath string, env []string, argv ...string) (string, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	_ = os.WriteFile(logPath, []byte(buf.String()), 0o644)
	return buf.String(), wall, err
}

// closeMasters ends the ssh ControlPersist masters a run left in dir.
func closeMasters(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		_ = exec.Command("ssh", "-o", "ControlPath="+filepath.Join(dir, e.Name()), "-O", "exit", "x").Run()
	}
}

var droverRecapRE = regexp.MustCompile(`(?m)^(\d+) hosts, (\d+) changed, exit (\d+), (\S+)$`)

func droverRecap(out string) (time.Duration, int, error) {
	m := droverRecapRE.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0, 0, errors.New("no recap line in drover's output")
	}
	last := m[len(m)-1]
	d, err := time.ParseDuration(last[4])
	if err != nil {
		return 0, 0, err
	}
	changed, _ := strconv.Atoi(last[2])
	if last[3] != "0" {
		return d, changed, fmt.Errorf("drover's recap says exit %s", last[3])
	}
	return d, changed, nil
}

var ansibleRecapRE = regexp.MustCompile(`(?m)^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

func ansibleRecap(out string) (int, error) {
	m := ansibleRecapRE.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return 0, errors.New("no PLAY RECAP in ansible-playbook's output")
	}
	changed := 0
	for _, l := range m {
		n, _ := strconv.Atoi(l[3])
		changed += n
		if l[4] != "0" || l[5] != "0" {
			return changed, fmt.Errorf("%s: unreachable=%s failed=%s", l[1], l[4], l[5])
		}
	}
	return changed, nil
}

// verify proves the cluster the tool just converged is really up: `drover health` (quorum, every
// broker registered, partitions, produce/consume canary) must pass. After Ansible, `drover
// provision --check` must also find nothing to change but its own agent: Ansible wrote the same
// bytes, modes and owners, and the services are enabled and running.
func verify(ctx context.Context, c *config, v, tag string) string {
	var probs []string
	out, _, err := runLogged(ctx, 3*time.Minute, filepath.Join(c.work, tag+"-health.log"), nil, c.droverArgs("health")...)
	if err != nil {
		probs = append(probs, fmt.Sprintf("drover health failed: %v: %s", err, tailStr(out, 400)))
	}
	if v == "ansible" {
		out, _, err := runLogged(ctx, 3*time.Minute, filepath.Join(c.work, tag+"-check.log"), nil,
			c.droverArgs("provision", "--check", "--diff", "--progress", "plain", "--skip-health")...)
		if err != nil {
			probs = append(probs, fmt.Sprintf("drover provision --check failed: %v: %s", err, tailStr(out, 400)))
		} else {
			var diffs []string
			agents := 0
			sc := bufio.NewScanner(strings.NewReader(out))
			for sc.Scan() {
				l := sc.Text()
				switch {
				case strings.Contains(l, "| changed: agent "):
					agents++
				case strings.Contains(l, "| changed: "):
					diffs = append(diffs, strings.TrimSpace(l))
				}
			}
			_, changed, rerr := droverRecap(out)
			switch {
			case rerr != nil:
				probs = append(probs, fmt.Sprintf("drover provision --check: %v", rerr))
			case len(diffs) > 0:
				probs = append(probs, fmt.Sprintf("drover --check after Ansible would change: %s", strings.Join(diffs, "; ")))
			case changed != agents:
				probs = append(probs, fmt.Sprintf("drover --check after Ansible: %d changed, of which only %d agent installs", changed, agents))
			}
		}
	}
	return strings.Join(probs, "; ")
}

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

func tailStr(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return strings.ReplaceAll(s, "\n", " / ")
}
