package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drover/drover/agent/protocol"
	"github.com/drover/drover/provisioner/display"
	"github.com/drover/drover/provisioner/engine"
)

var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "engine-test-")
	if err != nil {
		panic(err)
	}
	agentBin = filepath.Join(dir, "drover-agent")
	cmd := exec.Command("go", "build", "-o", agentBin, "github.com/drover/drover/agent/cmd/drover-agent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build agent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type fleet struct {
	hosts []*engine.Host
	roots map[string]string
	art   *engine.Artifact
}

func newFleet(t *testing.T, n int) *fleet {
	f := &fleet{roots: map[string]string{}}
	payload := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(payload, bytes.Repeat([]byte("payload binary "), 10000), 0755)
	f.art = &engine.Artifact{Name: "payload", Path: payload}
	for i := range n {
		name := fmt.Sprintf("node%d", i+1)
		root := t.TempDir()
		f.roots[name] = root
		f.hosts = append(f.hosts, &engine.Host{Name: name, Conn: &engine.LocalConn{Root: root}})
	}
	return f
}

func (f *fleet) phases(conf string) []engine.Phase {
	return []engine.Phase{
		&engine.EnsureAgent{Path: agentBin},
		&engine.PushArtifacts{For: func(h *engine.Host) []*engine.Artifact { return []*engine.Artifact{f.art} }},
		&engine.Apply{Plan: func(h *engine.Host) ([]protocol.Task, []string, error) {
			sha, _ := f.art.SHA256()
			return []protocol.Task{
				protocol.NewTask("dir", protocol.DirectoryParams{Path: "/etc/test", Mode: "0755"}),
				protocol.NewTask("conf", protocol.FileParams{Path: "/etc/test/test.conf", Content: conf + "host=" + h.Name + "\n"}),
				protocol.NewTask("bin", protocol.ArtifactParams{SHA256: sha, Link: "/opt/drover/bin/payload"}),
			}, []string{"/etc/test", "/opt/drover/bin"}, nil
		}},
	}
}

func run(t *testing.T, r *engine.Runner, hosts []*engine.Host, phases ...engine.Phase) (*engine.Result, string) {
	t.Helper()
	var out, errb bytes.Buffer
	d, err := display.New(display.Options{Mode: display.ModePlain, Out: &out, Err: &errb, Diff: r.Diff})
	if err != nil {
		t.Fatal(err)
	}
	r.Sink = d
	res := r.Run(context.Background(), hosts, phases...)
	d.Finish(res)
	return res, errb.String() + out.String()
}

func TestApplyIdempotentCheckDiff(t *testing.T) {
	f := newFleet(t, 3)
	res, out := run(t, &engine.Runner{Forks: 2}, f.hosts, f.phases("a=1\n")...)
	if res.ExitCode() != 0 {
		t.Fatalf("first run exit %d: %v\n%s", res.ExitCode(), res.Err, out)
	}
	for _, h := range f.hosts {
		// agent upload, artifact upload, dir, conf, link
		if s := h.Stats(); s.Changed != 5 || s.OK != 5 || s.Failed != 0 {
			t.Fatalf("%s first run stats %+v\n%s", h.Name, s, out)
		}
		b, err := os.ReadFile(filepath.Join(f.roots[h.Name], "opt/drover/bin/payload"))
		if err != nil || !bytes.HasPrefix(b, []byte("payload binary")) {
			t.Fatalf("%s: artifact link: %v", h.Name, err)
		}
	}
	if !strings.Contains(out, "node1 : ok=5    changed=5    unreachable=0    failed=0    skipped=0") {
		t.Fatalf("recap line missing:\n%s", out)
	}

	for i, h := range f.hosts { // fresh counters, same connections
		f.hosts[i] = &engine.Host{Name: h.Name, Conn: h.Conn}
	}
	res, out = run(t, &engine.Runner{Forks: 2}, f.hosts, f.phases("a=1\n")...)
	if res.ExitCode() != 0 || res.Changed() != 0 {
		t.Fatalf("second run: exit %d changed %d\n%s", res.ExitCode(), res.Changed(), out)
	}
	for _, h := range f.hosts {
		if s := h.Stats(); s.OK != 5 || s.Changed != 0 {
			t.Fatalf("%s second run stats %+v", h.Name, s)
		}
	}

	fresh := func() []*engine.Host {
		var hs []*engine.Host
		for _, h := range f.hosts {
			hs = append(hs, &engine.Host{Name: h.Name, Conn: h.Conn})
		}
		return hs
	}
	hs := fresh()
	res, out = run(t, &engine.Runner{Forks: 2, Check: true, Diff: true}, hs, f.phases("a=2\n")...)
	if res.ExitCode() != 0 || res.Changed() != 3 {
		t.Fatalf("check run: exit %d changed %d\n%s", res.ExitCode(), res.Changed(), out)
	}
	if !strings.Contains(out, "node2 | -a=1\nnode2 | +a=2\n") {
		t.Fatalf("diff not shown:\n%s", out)
	}
	if !hs[0].Changed("conf") || hs[0].Changed("dir") {
		t.Fatal("Host.Changed")
	}
	b, _ := os.ReadFile(filepath.Join(f.roots["node1"], "etc/test/test.conf"))
	if string(b) != "a=1\nhost=node1\n" {
		t.Fatalf("check mode wrote: %q", b)
	}
}

func TestFailingHostStopsAloneAndUnreachable(t *testing.T) {
	f := newFleet(t, 4)
	// node2: sudo is broken (the privileged apply fails); node3: the transport breaks.
	f.hosts[1].Conn.(*engine.LocalConn).Hook = func(cmd string) (string, error) {
		if strings.Contains(cmd, " apply") {
			return "echo 'sudo: a password is required' >&2; exit 1", nil
		}
		return cmd, nil
	}
	f.hosts[2].Conn.(*engine.LocalConn).Hook = func(cmd string) (string, error) {
		return "", errors.New("ssh: connection reset by peer")
	}
	var after atomic.Int32
	var afterHosts []string
	phases := append(f.phases("a=1\n"), engine.Step("after", func(ctx context.Context, h *engine.Host) error {
		after.Add(1)
		afterHosts = append(afterHosts, h.Name)
		return nil
	}))
	res, out := run(t, &engine.Runner{Forks: 4}, f.hosts, phases...)
	if res.ExitCode() != engine.ExitUnreachable {
		t.Fatalf("exit %d\n%s", res.ExitCode(), out)
	}
	if after.Load() != 2 {
		t.Fatalf("later phase ran on %v, want the two healthy hosts", afterHosts)
	}
	e2, e3 := f.hosts[1].Err(), f.hosts[2].Err()
	if e2 == nil || e2.Unreachable || !strings.Contains(e2.Error(), "password is required") {
		t.Fatalf("node2 error: %v", e2)
	}
	if e3 == nil || !e3.Unreachable || e3.Step != "check agent" {
		t.Fatalf("node3 error: %+v", e3)
	}
	var he *engine.HostError
	if !errors.As(res.Err, &he) {
		t.Fatal("joined error does not hold HostErrors")
	}
	if s := f.hosts[1].Stats(); s.Failed != 1 || s.Unreachable != 0 {
		t.Fatalf("node2 stats %+v", s)
	}
	if s := f.hosts[2].Stats(); s.Unreachable != 1 || s.Failed != 0 || s.OK != 0 {
		t.Fatalf("node3 stats %+v", s)
	}
	if !strings.Contains(out, "node2 | FAILED at apply/") || !strings.Contains(out, "node3 | UNREACHABLE") {
		t.Fatalf("display:\n%s", out)
	}

	// Without the unreachable host the exit code is 2.
	hs := []*engine.Host{{Name: "node1", Conn: f.hosts[0].Conn}, {Name: "node2", Conn: f.hosts[1].Conn}}
	res, out = run(t, &engine.Runner{}, hs, f.phases("a=1\n")...)
	if res.ExitCode() != engine.ExitFailed || hs[0].Failed() {
		t.Fatalf("exit %d\n%s", res.ExitCode(), out)
	}
}

func TestAgentTaskFailureIsTyped(t *testing.T) {
	f := newFleet(t, 1)
	phases := []engine.Phase{&engine.EnsureAgent{Path: agentBin}, &engine.Apply{Plan: func(h *engine.Host) ([]protocol.Task, []string, error) {
		return []protocol.Task{
			protocol.NewTask("ok", protocol.DirectoryParams{Path: "/etc/x"}),
			protocol.NewTask("outside", protocol.FileParams{Path: "/root/evil", Content: "x"}),
			protocol.NewTask("never", protocol.DirectoryParams{Path: "/etc/x/y"}),
		}, []string{"/etc/x"}, nil
	}}}
	res, out := run(t, &engine.Runner{}, f.hosts, phases...)
	e := f.hosts[0].Err()
	if res.ExitCode() != 2 || e == nil || e.Step != "outside" || !strings.Contains(e.Error(), "outside the owned paths") {
		t.Fatalf("exit %d err %v\n%s", res.ExitCode(), e, out)
	}
	if s := f.hosts[0].Stats(); s.Failed != 1 || s.Changed != 2 {
		t.Fatalf("stats %+v", s)
	}
	if _, ran := f.hosts[0].Result("never"); ran {
		t.Fatal("task after failure ran")
	}
}

func TestForksBoundAndFatal(t *testing.T) {
	var hosts []*engine.Host
	for i := range 7 {
		hosts = append(hosts, &engine.Host{Name: fmt.Sprintf("h%d", i), Conn: &engine.LocalConn{}})
	}
	var cur, peak atomic.Int32
	slow := engine.Step("slow", func(ctx context.Context, h *engine.Host) error {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(30 * time.Millisecond)
		cur.Add(-1)
		return nil
	})
	res := (&engine.Runner{Forks: 3}).Run(context.Background(), hosts, slow)
	if peak.Load() != 3 || res.ExitCode() != 0 {
		t.Fatalf("peak concurrency %d with forks 3", peak.Load())
	}
	for _, h := range hosts {
		if s := h.Stats(); s.OK != 1 {
			t.Fatalf("%s stats %+v", h.Name, s)
		}
	}

	var ran atomic.Int32
	boom := engine.Fatalize(engine.Step("boom", func(ctx context.Context, h *engine.Host) error {
		if h.Name == "h0" {
			return errors.New("boom")
		}
		return nil
	}))
	later := engine.Step("later", func(ctx context.Context, h *engine.Host) error { ran.Add(1); return nil })
	res = (&engine.Runner{}).Run(context.Background(), hosts, boom, later)
	if ran.Load() != 0 || res.ExitCode() != 2 || res.RunErr == nil {
		t.Fatalf("fatal phase did not stop the run: ran %d exit %d", ran.Load(), res.ExitCode())
	}
	only := engine.Only(later, func(h *engine.Host) bool { return h.Name == "h1" })
	ran.Store(0)
	(&engine.Runner{}).Run(context.Background(), hosts, only)
	if ran.Load() != 1 {
		t.Fatalf("Only ran on %d hosts", ran.Load())
	}
}

func TestCancelAndInterrupt(t *testing.T) {
	hosts := []*engine.Host{{Name: "a", Conn: &engine.LocalConn{}}, {Name: "b", Conn: &engine.LocalConn{}}}
	ctx, cancel := context.WithCancelCause(context.Background())
	sleep := engine.Step("sleep", func(ctx context.Context, h *engine.Host) error {
		_, err := h.Exec(ctx, "sleep 10", nil)
		return err
	})
	go func() { time.Sleep(100 * time.Millisecond); cancel(engine.ErrInterrupted) }()
	start := time.Now()
	res := (&engine.Runner{}).Run(ctx, hosts, sleep, sleep)
	if time.Since(start) > 5*time.Second || res.ExitCode() != engine.ExitInterrupted {
		t.Fatalf("cancel: exit %d after %s", res.ExitCode(), time.Since(start))
	}

	var msg bytes.Buffer
	ictx, stop := engine.WithInterrupt(context.Background(), &msg)
	defer stop()
	exited := make(chan int, 1)
	restore := engine.SetExitForTest(func(c int) { exited <- c })
	defer restore()
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case <-ictx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("first SIGINT did not cancel")
	}
	if !errors.Is(context.Cause(ictx), engine.ErrInterrupted) {
		t.Fatalf("cause %v", context.Cause(ictx))
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case c := <-exited:
		if c != 130 {
			t.Fatalf("exit %d", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second SIGINT did not exit")
	}
}

func TestPrivilegedAndQuote(t *testing.T) {
	h := &engine.Host{Name: "x", Sudo: true}
	if got := h.Privileged("echo 'hi'"); got != `sudo -n sh -c 'echo '\''hi'\'''` {
		t.Fatalf("%s", got)
	}
	out, err := exec.Command("sh", "-c", "echo "+engine.ShellQuote("it's $HOME")).Output()
	if err != nil || string(out) != "it's $HOME\n" {
		t.Fatalf("%q %v", out, err)
	}
}

func TestJSONAndRunLog(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	f := newFleet(t, 1)
	var out, errb bytes.Buffer
	log, err := display.OpenRunLog("test")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := display.New(display.Options{Mode: display.ModeJSON, Out: &out, Err: &errb, RunLog: log.Path()})
	r := &engine.Runner{Sink: engine.Tee(d, log)}
	bad := engine.Step("bad", func(ctx context.Context, h *engine.Host) error {
		_, err := h.Exec(ctx, "echo nope >&2; exit 3", nil)
		return err
	})
	res := r.Run(context.Background(), f.hosts, f.phases("x\n")[0], bad)
	d.Finish(res)
	log.Close()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.Contains(lines[len(lines)-1], `"type":"run_done"`) || !strings.Contains(lines[len(lines)-1], `"exit_code":2`) {
		t.Fatalf("json:\n%s", out.String())
	}
	if !strings.Contains(errb.String(), "run log: "+log.Path()) {
		t.Fatalf("run log path not printed:\n%s", errb.String())
	}
	b, _ := os.ReadFile(log.Path())
	if !strings.Contains(string(b), "run: ") || !strings.Contains(string(b), "exit status 3: nope") {
		t.Fatalf("run log:\n%s", b)
	}
}
