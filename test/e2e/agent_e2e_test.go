//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/agent/protocol"
	"github.com/drover/drover/provisioner/display"
	"github.com/drover/drover/provisioner/engine"
)

// sshConn is an engine.Conn over the OpenSSH client and the fleet's ssh_config, independent of
// provisioner/sshx so the agent and engine are tested on their own.
type sshConn struct{ cfg, node string }

func (c sshConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	x := exec.CommandContext(ctx, "ssh", "-F", c.cfg, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
		"-o", "ControlMaster=auto", "-o", "ControlPath=/tmp/drover-e2e-%C", "-o", "ControlPersist=60", c.node, cmd)
	x.Stdin, x.Stdout, x.Stderr = stdin, stdout, stderr
	err := x.Run()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 255 {
		return engine.Unreachable(err) // ssh's own failure, not the remote command's
	}
	return err
}

func (sshConn) Close() error { return nil }

const e2eUnit = `[Unit]
Description=drover e2e hello

[Service]
Type=notify
EnvironmentFile=/etc/drover-e2e/hello.env
ExecStart=/bin/sh -c 'systemd-notify --ready --pid=$$$$; exec sleep infinity'
NotifyAccess=all

[Install]
WantedBy=multi-user.target
`

func e2ePlan(greeting string) func(h *engine.Host) ([]protocol.Task, []string, error) {
	return func(h *engine.Host) ([]protocol.Task, []string, error) {
		yes := true
		svc := protocol.NewTask("service", protocol.ServiceParams{Name: "drover-e2e-hello.service", State: protocol.StateStarted, Enabled: &yes, Timeout: "30s"})
		svc.OnlyIfChanged = []string{"unit", "env"}
		return []protocol.Task{
			protocol.NewTask("facts", protocol.FactsParams{}),
			protocol.NewTask("etc", protocol.DirectoryParams{Path: "/etc/drover-e2e", Mode: "0755", Owner: "root", Group: "root"}),
			protocol.NewTask("env", protocol.FileParams{Path: "/etc/drover-e2e/hello.env", Content: "GREETING=" + greeting + "\nHOST=" + h.Name + "\n"}),
			protocol.NewTask("unit", protocol.UnitParams{Name: "drover-e2e-hello.service", Content: e2eUnit}),
			svc,
			protocol.NewTask("probe", protocol.ProbeParams{Command: []string{"systemctl", "is-active", "--quiet", "drover-e2e-hello.service"}, Timeout: "20s"}),
		}, []string{"/etc/drover-e2e", "/etc/systemd/system/drover-e2e-hello.service"}, nil
	}
}

func buildAgent(t *testing.T) string {
	bin := filepath.Join(repoRoot(t), "bin", "drover-agent")
	os.MkdirAll(filepath.Dir(bin), 0755)
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./agent/cmd/drover-agent")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build agent: %v\n%s", err, out)
	}
	return bin
}

func TestAgentApplyOnFleet(t *testing.T) {
	f := sharedFleet(t, 1)
	agent := buildAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	hosts := func(conns map[string]engine.Conn) []*engine.Host {
		var hs []*engine.Host
		for _, n := range f.Nodes {
			var c engine.Conn = sshConn{f.SSHConfig, n}
			if conns != nil && conns[n] != nil {
				c = conns[n]
			}
			hs = append(hs, &engine.Host{Name: n, Conn: c, Sudo: true}) // ec2-user
		}
		return hs
	}
	apply := func(t *testing.T, hs []*engine.Host, check bool, greeting string) (*engine.Result, string) {
		var out bytes.Buffer
		d, _ := display.New(display.Options{Mode: display.ModePlain, Out: &out, Err: &out, Diff: true})
		r := &engine.Runner{Forks: 10, Check: check, Diff: true, Sink: d}
		res := r.Run(ctx, hs, &engine.EnsureAgent{Path: agent}, &engine.Apply{Plan: e2ePlan(greeting)})
		d.Finish(res)
		t.Log(out.String())
		return res, out.String()
	}
	t.Cleanup(func() {
		for _, n := range f.Nodes {
			f.ssh(context.Background(), n, "sudo systemctl disable --now drover-e2e-hello.service; sudo rm -rf /etc/drover-e2e /etc/systemd/system/drover-e2e-hello.service; sudo systemctl daemon-reload")
		}
	})

	// First run converges every node.
	res, _ := apply(t, hosts(nil), false, "hello")
	if res.ExitCode() != 0 || res.Changed() == 0 {
		t.Fatalf("first run: exit %d changed %d: %v", res.ExitCode(), res.Changed(), res.Err)
	}
	for _, n := range f.Nodes {
		if out, err := f.ssh(ctx, n, "systemctl is-active drover-e2e-hello.service; systemctl is-enabled drover-e2e-hello.service"); err != nil || out != "active\nenabled\n" {
			t.Fatalf("%s: %q %v", n, out, err)
		}
	}

	// Second run: changed=0 everywhere; its wall time is the no-op figure.
	start := time.Now()
	hs := hosts(nil)
	res, _ = apply(t, hs, false, "hello")
	noop := time.Since(start)
	if res.ExitCode() != 0 || res.Changed() != 0 {
		t.Fatalf("second run: exit %d changed %d", res.ExitCode(), res.Changed())
	}
	t.Logf("no-op apply on %d hosts: %s", len(f.Nodes), noop)

	// Check + diff after editing the config: exactly that diff, nothing changes.
	before, _ := f.ssh(ctx, f.Nodes[0], "cat /etc/drover-e2e/hello.env; systemctl show -p MainPID --value drover-e2e-hello.service")
	hs = hosts(nil)
	res, out := apply(t, hs, true, "bonjour")
	if res.ExitCode() != 0 {
		t.Fatalf("check run exit %d", res.ExitCode())
	}
	for _, h := range hs {
		ev, _ := h.Result("env")
		want := "--- a/etc/drover-e2e/hello.env\n+++ b/etc/drover-e2e/hello.env\n@@ -1,2 +1,2 @@\n-GREETING=hello\n+GREETING=bonjour\n HOST=" + h.Name + "\n"
		if ev.Status != protocol.StatusChanged || ev.Diff != want {
			t.Fatalf("%s check diff:\n%s\nwant:\n%s", h.Name, ev.Diff, want)
		}
		if s := h.Stats(); s.Changed != 2 { // env + the service's would-restart
			t.Fatalf("%s check stats %+v", h.Name, s)
		}
	}
	if !strings.Contains(out, "+GREETING=bonjour") {
		t.Fatal("diff not displayed")
	}
	after, _ := f.ssh(ctx, f.Nodes[0], "cat /etc/drover-e2e/hello.env; systemctl show -p MainPID --value drover-e2e-hello.service")
	if before != after {
		t.Fatalf("check mode changed the node:\n%s\n->\n%s", before, after)
	}

	// Apply the edit: the handler restarts the service (new MainPID).
	hs = hosts(nil)
	res, _ = apply(t, hs, false, "bonjour")
	if res.ExitCode() != 0 {
		t.Fatalf("edit run exit %d", res.ExitCode())
	}
	if ev, _ := hs[0].Result("service"); !strings.Contains(ev.Msg, "restart") || !strings.Contains(ev.Msg, "ActiveState=active") {
		t.Fatalf("service event %+v", ev)
	}
	if restarted, _ := f.ssh(ctx, f.Nodes[0], "systemctl show -p MainPID --value drover-e2e-hello.service"); strings.HasSuffix(before, restarted) {
		t.Fatalf("service not restarted (MainPID %s)", restarted)
	}

	// One host with broken sudo fails alone (exit 2); the others succeed.
	if len(f.Nodes) >= 2 {
		bad := f.Nodes[len(f.Nodes)-1]
		if _, err := f.ssh(ctx, bad, "sudo mv /etc/sudoers.d/90-ec2-user /root/90-ec2-user.off"); err != nil {
			t.Fatal(err)
		}
		restore := func() {
			exec.Command("ssh", "-F", f.SSHConfig, "-l", "root", bad, "mv /root/90-ec2-user.off /etc/sudoers.d/90-ec2-user").Run()
		}
		defer restore()
		hs = hosts(nil)
		res, _ = apply(t, hs, false, "hola")
		if res.ExitCode() != engine.ExitFailed {
			t.Fatalf("broken sudo: exit %d", res.ExitCode())
		}
		for _, h := range hs {
			if (h.Name == bad) != h.Failed() {
				t.Fatalf("%s failed=%v (%v)", h.Name, h.Failed(), h.Err())
			}
		}
		restore()
	}
}

// TestServiceBothBuses drives the service kind through the system bus and through systemd's
// private socket, by hand-feeding the agent a request over ssh.
func TestServiceBothBuses(t *testing.T) {
	f := sharedFleet(t, 1)
	agent := buildAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := f.Nodes[0]
	h := &engine.Host{Name: n, Conn: sshConn{f.SSHConfig, n}, Sudo: true}
	res := (&engine.Runner{}).Run(ctx, []*engine.Host{h}, &engine.EnsureAgent{Path: agent})
	if res.ExitCode() != 0 {
		t.Fatal(res.Err)
	}
	t.Cleanup(func() {
		f.ssh(context.Background(), n, "sudo systemctl disable --now drover-e2e-bus.service; sudo rm -f /etc/systemd/system/drover-e2e-bus.service; sudo systemctl daemon-reload")
	})
	var mu sync.Mutex
	for i, bus := range []string{"system", "private", "system", "private"} {
		state := protocol.StateStarted
		if i%2 == 1 {
			state = protocol.StateStopped
		}
		req := protocol.Request{Version: protocol.ProtocolVersion, Owned: []string{"/etc/systemd/system/drover-e2e-bus.service"}, Tasks: []protocol.Task{
			protocol.NewTask("unit", protocol.UnitParams{Name: "drover-e2e-bus.service", Content: strings.Replace(e2eUnit, "EnvironmentFile=/etc/drover-e2e/hello.env\n", "", 1)}),
			protocol.NewTask("svc", protocol.ServiceParams{Name: "drover-e2e-bus.service", State: state, Timeout: "30s"}),
		}}
		body, _ := json.Marshal(req)
		var out, errb bytes.Buffer
		cmd := fmt.Sprintf("sudo -n env DROVER_AGENT_DBUS=%s %s apply", bus, protocol.AgentPath)
		if err := (sshConn{f.SSHConfig, n}).Run(ctx, cmd, bytes.NewReader(body), &out, &errb); err != nil {
			t.Fatalf("%s: %v: %s %s", bus, err, out.String(), errb.String())
		}
		mu.Lock()
		var last protocol.Event
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var ev protocol.Event
			json.Unmarshal([]byte(l), &ev)
			if ev.Task == "svc" && ev.Status.Final() {
				last = ev
			}
		}
		mu.Unlock()
		want := "ActiveState=active"
		if state == protocol.StateStopped {
			want = "ActiveState=inactive"
		}
		if last.Status != protocol.StatusChanged || !strings.Contains(last.Msg, want) {
			t.Fatalf("bus %s state %s: %+v", bus, state, last)
		}
	}
}
