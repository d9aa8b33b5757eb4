//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFleetLifecycle brings up its own 2-node fleet (FLEET_ID=8, apart from the shared one), proves
// the nodes are real hosts (ssh as ec2-user through the generated aliases, systemd running, a unit
// started and restarted), then tears the fleet down and checks that nothing is left behind.
func TestFleetLifecycle(t *testing.T) {
	script := filepath.Join(repoRoot(t), "test", "fleet", "fleet.sh")
	stateRoot := t.TempDir()
	env := []string{"FLEET_ID=8", "FLEET_STATE_ROOT=" + stateRoot}
	down := func() (string, error) { return run(t, env, script, "down") }
	t.Cleanup(func() { _, _ = down() })

	start := time.Now()
	out, err := run(t, env, script, "up", "2")
	if err != nil {
		t.Fatalf("fleet up 2: %v\n%s", err, out)
	}
	t.Logf("fleet up 2 took %s", time.Since(start).Round(100*time.Millisecond))
	cfg := filepath.Join(stateRoot, "8", "ssh_config")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for _, n := range []string{"node1", "node2"} {
		who, err := sshWith(ctx, cfg, n, "id -un && hostname && systemctl is-system-running")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Fields(who), []string{"ec2-user", n, "running"}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("%s: got %q, want %q", n, got, want)
		}
	}
	// the nodes reach each other by name
	if _, err := sshWith(ctx, cfg, "node1", "ping -c1 -W2 node2 >/dev/null 2>&1 || getent hosts node2"); err != nil {
		t.Fatalf("node1 cannot resolve node2: %v", err)
	}

	unit := `[Unit]
Description=drover fleet test unit
[Service]
ExecStart=/bin/sleep infinity
`
	script2 := "sudo -n tee /etc/systemd/system/fleet-e2e.service >/dev/null <<'EOF'\n" + unit + "EOF\n" +
		"sudo -n systemctl daemon-reload && sudo -n systemctl enable --now fleet-e2e.service && systemctl show -p MainPID --value fleet-e2e.service"
	pid1, err := sshWith(ctx, cfg, "node1", script2)
	if err != nil {
		t.Fatal(err)
	}
	pid2, err := sshWith(ctx, cfg, "node1", "sudo -n systemctl restart fleet-e2e.service && systemctl is-active fleet-e2e.service && systemctl show -p MainPID --value fleet-e2e.service")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(pid2)
	if len(f) != 2 || f[0] != "active" || f[1] == strings.TrimSpace(pid1) || f[1] == "0" {
		t.Fatalf("restart did not give a new active process: before %q, after %q", pid1, pid2)
	}
	if out, err := sshWith(ctx, cfg, "node2", "systemctl is-active fleet-e2e.service"); err == nil || strings.TrimSpace(out) == "active" {
		t.Fatalf("node2 shares node1's units (want separate hosts): %q", out)
	}

	pids, _ := filepath.Glob(filepath.Join(stateRoot, "8", "nodes", "*", "pid"))
	var launchers []string
	for _, p := range pids {
		b, _ := os.ReadFile(p)
		launchers = append(launchers, strings.TrimSpace(string(b)))
	}
	if out, err := down(); err != nil {
		t.Fatalf("fleet down: %v\n%s", err, out)
	}
	// independent checks that down left nothing behind
	for _, pid := range launchers {
		if b, err := os.ReadFile("/proc/" + pid + "/status"); err == nil && !strings.Contains(string(b), "zombie") {
			t.Errorf("launcher %s still running after down", pid)
		}
	}
	if b, _ := exec.Command("ip", "-br", "link").CombinedOutput(); strings.Contains(string(b), "dfl8v") || strings.Contains(string(b), "dflbr8") {
		t.Errorf("links left behind:\n%s", b)
	}
	if b, _ := exec.Command("ip", "netns", "list").CombinedOutput(); strings.Contains(string(b), "dfl8-") {
		t.Errorf("network namespaces left behind:\n%s", b)
	}
	if b, _ := os.ReadFile("/proc/mounts"); strings.Contains(string(b), stateRoot) {
		t.Errorf("mounts left behind under %s", stateRoot)
	}
	for _, cg := range []string{"/sys/fs/cgroup/unified/drover-fleet-8", "/sys/fs/cgroup/systemd/drover-fleet-8", "/sys/fs/cgroup/drover-fleet-8"} {
		if _, err := os.Stat(cg); err == nil {
			t.Errorf("cgroup %s left behind", cg)
		}
	}
}
