//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// droverRun runs bin/drover and returns stdout, stderr and the exit code.
func droverRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	bin := filepath.Join(repoRoot(t), "bin", "drover")
	if d := os.Getenv("DROVER_BIN"); d != "" {
		bin = filepath.Join(d, "drover")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, bin, args...)
	c.Dir = repoRoot(t)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("drover %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

var recapRE = regexp.MustCompile(`(?m)^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

// recap parses Ansible-style recap lines into host -> changed count.
func recap(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, x := range recapRE.FindAllStringSubmatch(out, -1) {
		m[x[1]] = x[3]
	}
	if len(m) == 0 {
		t.Fatalf("no recap in output:\n%s", out)
	}
	return m
}

// mainPIDs returns the service's MainPID per node.
func mainPIDs(t *testing.T, f fleet, unit string, nodes []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, n := range nodes {
		out, err := f.ssh(context.Background(), n, "systemctl show -p MainPID --value "+unit)
		if err != nil {
			t.Fatal(err)
		}
		m[n] = strings.TrimSpace(out)
	}
	return m
}

// TestCluster is the product end to end on six bare fleet nodes: provision, health, idempotency,
// check/diff of a heap change then its rolling application, a rolling restart with a canary, a
// node reboot, and an inventory that would renumber nodes refused.
func TestCluster(t *testing.T) {
	f := sharedFleet(t, 6)
	inv := filepath.Join(repoRoot(t), "inventories", "local", "inventory.yml")
	base := []string{"-i", inv, "-F", f.SSHConfig, "--progress", "plain"}
	coords, brokers := f.Nodes[:3], f.Nodes[3:6]
	ctx := context.Background()

	t.Run("ping", func(t *testing.T) {
		start := time.Now()
		out, errs, code := droverRun(t, "ping", "-i", inv, "-F", f.SSHConfig)
		t.Logf("drover ping of 6 hosts: %s wall\n%s", time.Since(start).Round(time.Millisecond), out)
		if code != 0 || strings.Count(out, " ok\n") != 6 || !strings.Contains(out, "ec2-user") {
			t.Fatalf("ping: exit %d\n%s%s", code, out, errs)
		}
	})

	t.Run("provision from bare nodes", func(t *testing.T) {
		start := time.Now()
		out, errs, code := droverRun(t, append([]string{"provision"}, base...)...)
		t.Logf("fresh provision: %s\n%s", time.Since(start).Round(time.Millisecond), out)
		if code != 0 {
			t.Fatalf("provision: exit %d\n%s\n%s", code, out, errs)
		}
		for h, c := range recap(t, out) {
			if c == "0" {
				t.Errorf("%s: a fresh provision changed nothing", h)
			}
		}
		if !strings.Contains(out, "HEALTHY") {
			t.Fatalf("provision did not end healthy:\n%s", out)
		}
	})

	t.Run("health", func(t *testing.T) {
		out, errs, code := droverRun(t, "health", "-i", inv, "-F", f.SSHConfig)
		followers := regexp.MustCompile(`(?m)\scoordinator\s.*\sfollower$`).FindAllString(out, -1)
		leaders := regexp.MustCompile(`(?m)\scoordinator\s.*\sleader \(2 synced followers\)$`).FindAllString(out, -1)
		if code != 0 || len(followers) != 2 || len(leaders) != 1 || !strings.Contains(out, "canary: produced") {
			t.Fatalf("health: exit %d\n%s%s", code, out, errs)
		}
		out, _, code = droverRun(t, "health", "-i", inv, "-F", f.SSHConfig, "--output", "json")
		if code != 0 || !strings.Contains(out, `"healthy": true`) {
			t.Fatalf("health json: exit %d\n%s", code, out)
		}
	})

	t.Run("coordinator four-letter words", func(t *testing.T) {
		modes := map[string]int{}
		for _, n := range coords {
			// as an operator would, from another node
			out, err := f.ssh(ctx, brokers[0], "echo srvr | nc -q1 "+n+" 2181")
			if err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`(?m)^Mode: (\w+)$`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("%s: srvr reply without Mode:\n%s", n, out)
			}
			modes[m[1]]++
		}
		if modes["leader"] != 1 || modes["follower"] != 2 {
			t.Fatalf("want one leader and two followers, got %v", modes)
		}
	})

	t.Run("kcat through the advertised listeners", func(t *testing.T) {
		if _, err := exec.LookPath("kcat"); err != nil {
			t.Fatalf("kcat not installed (apt-get install kcat): %v", err)
		}
		seed := strings.TrimSpace(mustSSH(t, f, brokers[0], "hostname -I | cut -d' ' -f1")) + ":9092"
		out, err := exec.Command("kcat", "-b", seed, "-L").CombinedOutput()
		if err != nil || strings.Count(string(out), "broker ") < 3 {
			t.Fatalf("kcat -L: %v\n%s", err, out)
		}
		msgs := "one\ntwo\nthree\n"
		p := exec.Command("kcat", "-b", seed, "-P", "-t", "e2e-kcat", "-X", "acks=all")
		p.Stdin = strings.NewReader(msgs)
		if out, err := p.CombinedOutput(); err != nil {
			t.Fatalf("kcat -P: %v\n%s", err, out)
		}
		out, err = exec.Command("kcat", "-b", seed, "-C", "-t", "e2e-kcat", "-o", "beginning", "-e", "-q", "-f", "%s\n").CombinedOutput()
		got := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err != nil || len(got) != 3 {
			t.Fatalf("kcat -C: %v\n%s", err, out)
		}
	})

	t.Run("second provision changes nothing", func(t *testing.T) {
		before := mainPIDs(t, f, "drover-broker.service", brokers)
		start := time.Now()
		out, errs, code := droverRun(t, append([]string{"provision", "--skip-health"}, base...)...)
		took := time.Since(start)
		t.Logf("no-op provision: %s (target < 1.5 s)", took.Round(time.Millisecond))
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		for h, c := range recap(t, out) {
			if c != "0" {
				t.Errorf("%s: changed=%s on a no-op run", h, c)
			}
		}
		if strings.Contains(errs, "rolling restart") {
			t.Errorf("a no-op run restarted something:\n%s", errs)
		}
		if after := mainPIDs(t, f, "drover-broker.service", brokers); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("broker PIDs changed on a no-op run: %v -> %v", before, after)
		}
	})

	t.Run("heap change: check --diff, then a rolling apply", func(t *testing.T) {
		src, err := os.ReadFile(inv)
		if err != nil {
			t.Fatal(err)
		}
		edited := strings.Replace(string(src), "        num_partitions: 3", "        heap: 384m\n        num_partitions: 3", 1)
		if edited == string(src) {
			t.Fatal("could not edit the kafka group's vars in the inventory")
		}
		inv2 := filepath.Join(t.TempDir(), "inventory.yml")
		if err := os.WriteFile(inv2, []byte(edited), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"-i", inv2, "-F", f.SSHConfig, "--progress", "plain"}
		envBefore := mustSSH(t, f, brokers[0], "sudo -n cat /etc/drover/broker.env")
		pids := mainPIDs(t, f, "drover-broker.service", brokers)
		cpids := mainPIDs(t, f, "drover-coordinator.service", coords)

		out, errs, code := droverRun(t, append([]string{"provision", "--check", "--diff"}, args...)...)
		if code != 0 {
			t.Fatalf("check: exit %d\n%s%s", code, out, errs)
		}
		all := out + errs
		if !strings.Contains(all, "+GOMEMLIMIT=384MiB") || !strings.Contains(all, "-GOMEMLIMIT=256MiB") {
			t.Fatalf("check --diff does not show the environment diff:\n%s", all)
		}
		if strings.Contains(all, "/etc/drover/zoo.cfg") {
			t.Errorf("check --diff shows coordinator changes for a broker-only edit:\n%s", all)
		}
		if got := mustSSH(t, f, brokers[0], "sudo -n cat /etc/drover/broker.env"); got != envBefore {
			t.Fatalf("check mode changed the node:\n%s", got)
		}
		if p := mainPIDs(t, f, "drover-broker.service", brokers); fmt.Sprint(p) != fmt.Sprint(pids) {
			t.Fatalf("check mode restarted brokers")
		}

		out, errs, code = droverRun(t, append([]string{"provision"}, args...)...)
		t.Logf("heap change applied:\n%s", errs[strings.Index(errs, "rolling restart"):])
		if code != 0 {
			t.Fatalf("apply: exit %d\n%s%s", code, out, errs)
		}
		// one at a time: every broker restarts, and each is healthy again before the next starts
		var seq []string
		for _, l := range strings.Split(errs, "\n") {
			if m := regexp.MustCompile(`^(node\d+): (restarting|healthy again)`).FindStringSubmatch(l); m != nil {
				seq = append(seq, m[1]+" "+m[2])
			}
		}
		if len(seq) != 6 {
			t.Fatalf("want 3 restarts each followed by healthy, got %v", seq)
		}
		for i := 0; i < 6; i += 2 {
			if !strings.HasSuffix(seq[i], "restarting") || !strings.HasSuffix(seq[i+1], "healthy again") || strings.Fields(seq[i])[0] != strings.Fields(seq[i+1])[0] {
				t.Fatalf("restarts overlap: %v", seq)
			}
		}
		after := mainPIDs(t, f, "drover-broker.service", brokers)
		for _, n := range brokers {
			if after[n] == pids[n] {
				t.Errorf("%s was not restarted", n)
			}
		}
		if c := mainPIDs(t, f, "drover-coordinator.service", coords); fmt.Sprint(c) != fmt.Sprint(cpids) {
			t.Errorf("coordinators restarted for a broker heap change")
		}
		if env := mustSSH(t, f, brokers[0], "sudo -n cat /etc/drover/broker.env"); !strings.Contains(env, "GOMEMLIMIT=384MiB") {
			t.Errorf("broker.env not updated:\n%s", env)
		}
		// back to the inventory of record (rolls again), so later tests see it
		if out, errs, code := droverRun(t, append([]string{"provision", "--skip-health"}, base...)...); code != 0 {
			t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
		}
	})

	t.Run("rolling restart with canary", func(t *testing.T) {
		start := time.Now()
		out, errs, code := droverRun(t, append([]string{"restart", "--rolling", "--canary"}, base...)...)
		t.Logf("rolling restart of 6 nodes: %s\n%s", time.Since(start).Round(time.Millisecond), out)
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		m := regexp.MustCompile(`canary: sent (\d+), acked (\d+), consumed (\d+), lost (\d+), duplicated (\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no canary line:\n%s", out)
		}
		if m[2] == "0" || m[4] != "0" || m[5] != "0" {
			t.Fatalf("canary: acked %s lost %s duplicated %s", m[2], m[4], m[5])
		}
		if strings.Count(out, " ok\n") != 6 {
			t.Fatalf("not every node restarted:\n%s", out)
		}
	})

	t.Run("a rebooted broker node comes back by itself", func(t *testing.T) {
		n := brokers[1]
		// the start time of the node's own PID 1 tells a rebooted node from one that did not go down
		initStart := "awk '{print $22}' /proc/1/stat"
		before := strings.TrimSpace(mustSSH(t, f, n, initStart))
		_, _ = f.ssh(ctx, n, "sudo -n systemctl reboot") // the connection drops
		eventually(t, 90*time.Second, n+" rebooted with its broker running", func() error {
			out, err := f.ssh(ctx, n, initStart+"; systemctl is-active drover-broker")
			if err != nil {
				return err
			}
			fs := strings.Fields(out)
			if len(fs) != 2 || fs[0] == before || fs[1] != "active" {
				return fmt.Errorf("init started at %q (before reboot %s): %q", out, before, fs)
			}
			return nil
		})
		start := time.Now()
		eventually(t, 2*time.Minute, "cluster healthy after the reboot", func() error {
			out, errs, code := droverRun(t, "health", "-i", inv, "-F", f.SSHConfig, "--no-canary")
			if code != 0 {
				return fmt.Errorf("exit %d: %s%s", code, out, errs)
			}
			return nil
		})
		t.Logf("healthy %s after the node answered again", time.Since(start).Round(time.Millisecond))
	})

	t.Run("an inventory that would renumber nodes is refused", func(t *testing.T) {
		// the seed INI inventory, mapped onto the same nodes: peter-kafka01 -> node4 would turn
		// broker.id 4 into 1.
		cfg := seedSSHConfig(t, f)
		seed := filepath.Join(repoRoot(t), "inventories", "seed", "hosts")
		out, errs, code := droverRun(t, "ping", "-i", seed, "-F", cfg)
		if code != 0 || strings.Count(out, " ok\n") != 6 {
			t.Fatalf("seed inventory ping: exit %d\n%s%s", code, out, errs)
		}
		out, errs, code = droverRun(t, "provision", "-i", seed, "-F", cfg, "--limit", "kafkahosts", "--progress", "plain")
		all := out + errs
		if code != 2 {
			t.Fatalf("want exit 2 for a renumbering run, got %d\n%s", code, all)
		}
		if !strings.Contains(all, "peter-kafka01.foo.bar") || !regexp.MustCompile(`\b4\b.*\b1\b|\b1\b.*\b4\b`).MatchString(all) {
			t.Fatalf("the error must name the host and both ids:\n%s", all)
		}
		if id := strings.TrimSpace(mustSSH(t, f, brokers[0], "sudo -n cat /var/lib/drover/broker/broker.id")); id != "4" {
			t.Fatalf("broker.id on %s is now %q", brokers[0], id)
		}
	})
}

func mustSSH(t *testing.T, f fleet, node, cmd string) string {
	t.Helper()
	out, err := f.ssh(context.Background(), node, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// seedSSHConfig maps the seed inventory's names onto the fleet: peter-zk0N -> nodeN,
// peter-kafka0N -> node(N+3), the way a user's ~/.ssh/config would.
func seedSSHConfig(t *testing.T, f fleet) string {
	b, err := os.ReadFile(f.SSHConfig)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 1; i <= 3; i++ {
		s = strings.Replace(s, fmt.Sprintf("Host node%d\n", i), fmt.Sprintf("Host peter-zk0%d.foo.bar\n", i), 1)
		s = strings.Replace(s, fmt.Sprintf("Host node%d\n", i+3), fmt.Sprintf("Host peter-kafka0%d.foo.bar\n", i), 1)
	}
	p := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
