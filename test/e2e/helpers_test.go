//go:build e2e

// Package e2e holds the end-to-end tests that run against a local fleet of systemd-nspawn hosts
// (test/fleet/fleet.sh). `make e2e` brings a fleet up, points these tests at it through
// DROVER_FLEET_SSH_CONFIG and DROVER_FLEET_NODES, and always tears it down.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// repoRoot is the module root, found from this file's location so tests run from any directory.
func repoRoot(t testing.TB) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// fleet describes the shared fleet that `make e2e` brought up.
type fleet struct {
	SSHConfig string
	Nodes     []string
}

// sharedFleet returns the fleet from the environment; a missing fleet is a failure, not a skip,
// because `make e2e` always provides one.
func sharedFleet(t testing.TB, min int) fleet {
	t.Helper()
	cfg, nodes := os.Getenv("DROVER_FLEET_SSH_CONFIG"), os.Getenv("DROVER_FLEET_NODES")
	if cfg == "" || nodes == "" {
		t.Fatalf("DROVER_FLEET_SSH_CONFIG / DROVER_FLEET_NODES not set: run the e2e tests through `make e2e`")
	}
	f := fleet{SSHConfig: cfg, Nodes: strings.Split(nodes, ",")}
	if len(f.Nodes) < min {
		t.Fatalf("this test needs %d fleet nodes, the fleet has %d", min, len(f.Nodes))
	}
	return f
}

// ssh runs a command on a node through the fleet's ssh_config, exactly as a user would.
func (f fleet) ssh(ctx context.Context, node, cmd string) (string, error) {
	return sshWith(ctx, f.SSHConfig, node, cmd)
}

func sshWith(ctx context.Context, cfg, node, cmd string) (string, error) {
	c := exec.CommandContext(ctx, "ssh", "-F", cfg, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", node, cmd)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	if err != nil {
		return out.String(), fmt.Errorf("ssh %s %q: %w: %s", node, cmd, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// eventually polls cond until it returns nil or the timeout passes; no fixed sleeps in tests.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// run runs a local command and returns its combined output.
func run(t testing.TB, env []string, name string, args ...string) (string, error) {
	t.Helper()
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	return out.String(), err
}
