package tasks

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover/drover/agent/protocol"
)

type runOut struct {
	events []protocol.Event
	sum    protocol.Summary
	byID   map[string]protocol.Event
}

func (o runOut) status(id string) protocol.Status { return o.byID[id].Status }

func newTestEnv(root string, check bool, owned ...string) *Env {
	req := protocol.Request{Root: root, Check: check, Diff: true, Owned: owned}
	return NewEnv(req)
}

func run(t *testing.T, env *Env, ts ...protocol.Task) runOut {
	t.Helper()
	req := protocol.Request{Version: protocol.ProtocolVersion, Check: env.Check, Diff: env.Diff, Owned: env.Owned, Root: env.Root, Tasks: ts}
	out := runOut{byID: map[string]protocol.Event{}}
	out.sum = Run(context.Background(), req, env, func(ev protocol.Event) error {
		out.events = append(out.events, ev)
		if ev.Status.Final() {
			out.byID[ev.Task] = ev
		}
		return nil
	})
	return out
}

func fileTask(id, path, content string) protocol.Task {
	return protocol.NewTask(id, protocol.FileParams{Path: path, Content: content, Mode: "0640"})
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFileCreateChangeIdempotentCheck(t *testing.T) {
	root := t.TempDir()
	env := newTestEnv(root, false, "/etc/drover")
	ts := []protocol.Task{
		protocol.NewTask("dir", protocol.DirectoryParams{Path: "/etc/drover", Mode: "0750"}),
		fileTask("conf", "/etc/drover/a.conf", "one\ntwo\nthree\n"),
	}
	o := run(t, env, ts...)
	if o.sum.Changed != 2 || o.sum.Failed != 0 {
		t.Fatalf("first run: %+v %+v", o.sum, o.events)
	}
	if d := o.byID["conf"].Diff; !strings.Contains(d, "+two\n") || !strings.Contains(d, "--- /dev/null") {
		t.Fatalf("diff of a new file: %q", d)
	}
	real := filepath.Join(root, "etc/drover/a.conf")
	if got := read(t, real); got != "one\ntwo\nthree\n" {
		t.Fatalf("content %q", got)
	}
	if fi, _ := os.Stat(real); fi.Mode().Perm() != 0640 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if fi, _ := os.Stat(filepath.Join(root, "etc/drover")); fi.Mode().Perm() != 0750 {
		t.Fatalf("dir mode %v", fi.Mode())
	}

	// Second run: nothing changes.
	o = run(t, newTestEnv(root, false, "/etc/drover"), ts...)
	if o.sum.Changed != 0 || o.sum.OK != 2 {
		t.Fatalf("second run not idempotent: %+v %+v", o.sum, o.events)
	}

	// Check mode after an edit: exactly that diff, nothing written.
	ts[1] = fileTask("conf", "/etc/drover/a.conf", "one\nTWO\nthree\n")
	o = run(t, newTestEnv(root, true, "/etc/drover"), ts...)
	want := "--- a/etc/drover/a.conf\n+++ b/etc/drover/a.conf\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n"
	if o.status("conf") != protocol.StatusChanged || o.byID["conf"].Diff != want {
		t.Fatalf("check diff:\n%s\nwant:\n%s", o.byID["conf"].Diff, want)
	}
	if got := read(t, real); got != "one\ntwo\nthree\n" {
		t.Fatalf("check mode wrote the file: %q", got)
	}
	// Mode drift alone is a change, and check mode leaves it.
	os.Chmod(real, 0600)
	o = run(t, newTestEnv(root, true, "/etc/drover"), fileTask("conf", "/etc/drover/a.conf", "one\ntwo\nthree\n"))
	if o.status("conf") != protocol.StatusChanged || !strings.Contains(o.byID["conf"].Msg, "mode 0600 -> 0640") {
		t.Fatalf("mode drift: %+v", o.byID["conf"])
	}
	if fi, _ := os.Stat(real); fi.Mode().Perm() != 0600 {
		t.Fatal("check mode fixed the mode")
	}
	o = run(t, newTestEnv(root, false, "/etc/drover"), fileTask("conf", "/etc/drover/a.conf", "one\ntwo\nthree\n"))
	if fi, _ := os.Stat(real); o.sum.Changed != 1 || fi.Mode().Perm() != 0640 {
		t.Fatalf("mode not fixed: %+v %v", o.sum, fi.Mode())
	}
	// No temp files left behind.
	ents, _ := os.ReadDir(filepath.Join(root, "etc/drover"))
	if len(ents) != 1 {
		t.Fatalf("leftovers: %v", ents)
	}
}

func TestFileSecretRedacted(t *testing.T) {
	root := t.TempDir()
	o := run(t, newTestEnv(root, false, "/etc"), protocol.NewTask("s", protocol.FileParams{Path: "/etc/secret", Content: "hunter2\n", Secret: true}))
	if d := o.byID["s"].Diff; strings.Contains(d, "hunter2") || !strings.Contains(d, "redacted") {
		t.Fatalf("secret leaked: %q", d)
	}
}

func TestOwnedPathsRefused(t *testing.T) {
	root := t.TempDir()
	o := run(t, newTestEnv(root, false, "/etc/drover"),
		fileTask("ok", "/etc/drover/x", "x"),
		fileTask("evil", "/etc/drover-other/x", "x"),
		fileTask("after", "/etc/drover/y", "y"))
	ev := o.byID["evil"]
	if ev.Status != protocol.StatusFailed || !strings.Contains(ev.Err, `"evil"`) || !strings.Contains(ev.Err, "/etc/drover-other/x") {
		t.Fatalf("refusal: %+v", ev)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/drover-other")); err == nil {
		t.Fatal("wrote outside owned paths")
	}
	if _, ran := o.byID["after"]; ran {
		t.Fatal("run continued after a failed task")
	}
	o = run(t, newTestEnv(root, false), fileTask("none", "/etc/drover/x", "x"))
	if o.sum.Failed != 1 {
		t.Fatal("empty owned list must refuse every write")
	}
	o = run(t, newTestEnv(root, false, "/"), fileTask("rel", "/etc/../etc/x", "x"))
	if o.sum.Failed != 1 {
		t.Fatal("unclean path accepted")
	}
}

func TestOnlyIfChangedGenericSkip(t *testing.T) {
	root := t.TempDir()
	ts := []protocol.Task{fileTask("a", "/d/a", "a"), fileTask("b", "/d/b", "b")}
	ts[1].OnlyIfChanged = []string{"a"}
	o := run(t, newTestEnv(root, false, "/d"), protocol.NewTask("dir", protocol.DirectoryParams{Path: "/d"}), ts[0], ts[1])
	if o.status("b") != protocol.StatusChanged {
		t.Fatalf("triggered task: %+v", o.byID["b"])
	}
	os.Remove(filepath.Join(root, "d/b"))
	o = run(t, newTestEnv(root, false, "/d"), ts...)
	if o.status("b") != protocol.StatusSkipped || o.sum.Skipped != 1 {
		t.Fatalf("untriggered task: %+v", o.byID["b"])
	}
	bad := fileTask("c", "/d/c", "c")
	bad.OnlyIfChanged = []string{"later"}
	if o = run(t, newTestEnv(root, false, "/d"), bad); o.sum.Failed != 1 {
		t.Fatal("unknown trigger accepted")
	}
}

const unitV1 = `[Unit]
Description=test service

[Service]
Type=notify
ExecStart=/opt/drover/bin/x --flag
`

// Same options, different formatting and comments.
const unitV1Reformatted = `# rendered by drover
[Unit]
Description=test service
; a comment

[Service]
Type=notify
ExecStart=/opt/drover/bin/x \
  --flag
`

func TestUnitSemanticChange(t *testing.T) {
	root := t.TempDir()
	u := func(c string) protocol.Task {
		return protocol.NewTask("unit", protocol.UnitParams{Name: "x.service", Content: c})
	}
	env := newTestEnv(root, false, "/etc/systemd/system")
	o := run(t, env, u(unitV1))
	if o.status("unit") != protocol.StatusChanged || !env.unitsChanged {
		t.Fatalf("create: %+v", o.byID["unit"])
	}
	env = newTestEnv(root, false, "/etc/systemd/system")
	o = run(t, env, u(unitV1Reformatted))
	if o.status("unit") != protocol.StatusOK || env.unitsChanged {
		t.Fatalf("formatting-only change reported: %+v", o.byID["unit"])
	}
	if got := read(t, filepath.Join(root, "etc/systemd/system/x.service")); got != unitV1 {
		t.Fatal("formatting-only change rewrote the file")
	}
	env = newTestEnv(root, true, "/etc/systemd/system")
	o = run(t, env, u(strings.Replace(unitV1, "--flag", "--other", 1)))
	if o.status("unit") != protocol.StatusChanged || !strings.Contains(o.byID["unit"].Diff, "+ExecStart=/opt/drover/bin/x --other") {
		t.Fatalf("check change: %+v", o.byID["unit"])
	}
	if got := read(t, filepath.Join(root, "etc/systemd/system/x.service")); got != unitV1 {
		t.Fatal("check mode wrote the unit")
	}
	o = run(t, newTestEnv(root, false, "/etc/systemd/system"), u("[Unit\nbroken"))
	if o.sum.Failed != 1 {
		t.Fatal("broken unit accepted")
	}
}

// fakeSystemd records calls and keeps unit state in memory.
type fakeSystemd struct {
	active map[string]string
	file   map[string]string
	calls  []string
}

func (f *fakeSystemd) Reload(ctx context.Context) error {
	f.calls = append(f.calls, "reload")
	return nil
}
func (f *fakeSystemd) State(ctx context.Context, n string) (string, string, error) {
	a, ok := f.active[n]
	if !ok {
		return "inactive", "not-found", nil
	}
	return a, f.file[n], nil
}
func (f *fakeSystemd) Enable(ctx context.Context, n string) (bool, error) {
	f.calls = append(f.calls, "enable "+n)
	f.file[n] = "enabled"
	return true, nil
}
func (f *fakeSystemd) Disable(ctx context.Context, n string) (bool, error) {
	f.calls = append(f.calls, "disable "+n)
	f.file[n] = "disabled"
	return true, nil
}
func (f *fakeSystemd) Job(ctx context.Context, op, n string) (string, error) {
	f.calls = append(f.calls, op+" "+n)
	if op == "stop" {
		f.active[n] = "inactive"
	} else {
		f.active[n] = "active"
	}
	return "done", nil
}
func (f *fakeSystemd) Close() {}

func TestServiceHandlersAndReload(t *testing.T) {
	root := t.TempDir()
	sd := &fakeSystemd{active: map[string]string{"x.service": "inactive"}, file: map[string]string{"x.service": "disabled"}}
	yes := true
	plan := func(conf string) []protocol.Task {
		svc := protocol.NewTask("svc", protocol.ServiceParams{Name: "x.service", State: protocol.StateStarted, Enabled: &yes})
		svc.OnlyIfChanged = []string{"unit", "conf"}
		return []protocol.Task{
			protocol.NewTask("unit", protocol.UnitParams{Name: "x.service", Content: unitV1}),
			fileTask("conf", "/etc/x.conf", conf),
			svc,
		}
	}
	apply := func(check bool, conf string) runOut {
		env := newTestEnv(root, check, "/etc")
		env.Systemd = func(context.Context) (Systemd, error) { return sd, nil }
		sd.calls = nil
		return run(t, env, plan(conf)...)
	}
	o := apply(false, "v1")
	if got := strings.Join(sd.calls, ";"); got != "reload;enable x.service;start x.service" {
		t.Fatalf("first run calls %q (%+v)", got, o.events)
	}
	if o.status("svc") != protocol.StatusChanged || !strings.Contains(o.byID["svc"].Msg, "ActiveState=active") {
		t.Fatalf("svc: %+v", o.byID["svc"])
	}
	o = apply(false, "v1")
	if len(sd.calls) != 0 || o.sum.Changed != 0 {
		t.Fatalf("second run: calls %v, %+v", sd.calls, o.sum)
	}
	o = apply(true, "v2")
	if len(sd.calls) != 0 || o.status("svc") != protocol.StatusChanged || !strings.Contains(o.byID["svc"].Msg, "would restart") {
		t.Fatalf("check run: calls %v, %+v", sd.calls, o.byID["svc"])
	}
	o = apply(false, "v2")
	if got := strings.Join(sd.calls, ";"); got != "restart x.service" {
		t.Fatalf("handler run calls %q", got)
	}
	// Stop.
	env := newTestEnv(root, false, "/etc")
	env.Systemd = func(context.Context) (Systemd, error) { return sd, nil }
	sd.calls = nil
	o = run(t, env, protocol.NewTask("stop", protocol.ServiceParams{Name: "x.service", State: protocol.StateStopped}))
	if got := strings.Join(sd.calls, ";"); got != "stop x.service" || o.sum.Changed != 1 {
		t.Fatalf("stop calls %q", got)
	}
}

func TestUserAndGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("useradd --prefix needs root")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("no useradd")
	}
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0755)
	for _, f := range []string{"passwd", "group", "shadow", "gshadow"} {
		b, _ := os.ReadFile("/etc/" + f)
		os.WriteFile(filepath.Join(root, "etc", f), b, 0644)
	}
	ts := []protocol.Task{
		protocol.NewTask("g", protocol.GroupParams{Name: "drovertest"}),
		protocol.NewTask("u", protocol.UserParams{Name: "drovertest", Group: "drovertest"}),
		protocol.NewTask("d", protocol.DirectoryParams{Path: "/var/lib/drovertest", Owner: "drovertest", Group: "drovertest", Mode: "0700"}),
	}
	o := run(t, newTestEnv(root, true, "/var/lib"), ts[:2]...)
	if o.sum.Changed != 2 || strings.Contains(read(t, filepath.Join(root, "etc/passwd")), "drovertest") {
		t.Fatalf("check: %+v", o.events)
	}
	o = run(t, newTestEnv(root, false, "/var/lib"), ts...)
	if o.sum.Changed != 3 || o.sum.Failed != 0 {
		t.Fatalf("apply: %+v", o.events)
	}
	pw := read(t, filepath.Join(root, "etc/passwd"))
	if !strings.Contains(pw, "drovertest:") || !strings.Contains(pw, "nologin") {
		t.Fatalf("passwd: %s", pw)
	}
	if strings.Contains(read(t, "/etc/passwd"), "drovertest") {
		t.Fatal("touched the host's /etc/passwd")
	}
	o = run(t, newTestEnv(root, false, "/var/lib"), ts...)
	if o.sum.Changed != 0 {
		t.Fatalf("second run: %+v", o.events)
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestArtifactPutHasLink(t *testing.T) {
	root := t.TempDir()
	store := filepath.Join(root, protocol.StoreDir)
	v1, v2 := []byte("binary v1\x00\x01"), bytes.Repeat([]byte("v2"), 100000)
	h1, h2 := sha(v1), sha(v2)

	if err := Put(store, h1, "none", 0755, bytes.NewReader(v2)); err == nil {
		t.Fatal("put accepted bytes with the wrong hash")
	}
	if ents, _ := os.ReadDir(store); len(ents) != 0 {
		t.Fatalf("failed put left %v", ents)
	}
	if err := Put(store, h1, "none", 0755, bytes.NewReader(v1)); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(v2)
	zw.Close()
	if err := Put(store, h2, "gzip", 0755, &gz); err != nil {
		t.Fatal(err)
	}
	have, err := Has(store, []string{h1, h2, sha([]byte("nope"))})
	if err != nil || len(have) != 2 {
		t.Fatalf("has: %v %v", have, err)
	}
	if fi, _ := os.Stat(filepath.Join(store, h2)); fi.Mode().Perm() != 0755 {
		t.Fatalf("mode %v", fi.Mode())
	}
	art := func(h string) protocol.Task {
		return protocol.NewTask("bin", protocol.ArtifactParams{SHA256: h, Link: "/opt/drover/bin/x"})
	}
	link := filepath.Join(root, "opt/drover/bin/x")
	for i, step := range []struct {
		h    string
		want protocol.Status
	}{{h1, protocol.StatusChanged}, {h1, protocol.StatusOK}, {h2, protocol.StatusChanged}} {
		o := run(t, newTestEnv(root, false, "/opt/drover/bin"), art(step.h))
		if o.status("bin") != step.want {
			t.Fatalf("step %d: %+v", i, o.byID["bin"])
		}
		if got := read(t, link); got != string(map[string][]byte{h1: v1, h2: v2}[step.h]) {
			t.Fatalf("step %d: link content wrong", i)
		}
	}
	o := run(t, newTestEnv(root, true, "/opt/drover/bin"), art(h1))
	if o.status("bin") != protocol.StatusChanged || read(t, link) != string(v2) {
		t.Fatal("check mode flipped the link")
	}
	os.WriteFile(filepath.Join(store, h1), []byte("corrupt"), 0755)
	if o = run(t, newTestEnv(root, false, "/opt/drover/bin"), art(h1)); o.sum.Failed != 1 {
		t.Fatal("corrupt store file accepted")
	}
}

func TestProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	env := newTestEnv(t.TempDir(), false)
	o := run(t, env,
		protocol.NewTask("tcp", protocol.ProbeParams{TCP: ln.Addr().String(), Timeout: "5s"}),
		protocol.NewTask("http", protocol.ProbeParams{HTTP: srv.URL + "/ok", Timeout: "5s"}),
		protocol.NewTask("cmd", protocol.ProbeParams{Command: []string{"true"}, Timeout: "5s"}),
	)
	if o.sum.OK != 3 {
		t.Fatalf("%+v", o.events)
	}
	for _, p := range []protocol.ProbeParams{
		{TCP: closedAddr, Timeout: "300ms", Interval: "50ms"},
		{HTTP: srv.URL + "/bad", Timeout: "300ms", Interval: "50ms"},
		{Command: []string{"false"}, Timeout: "300ms", Interval: "50ms"},
	} {
		o := run(t, newTestEnv(t.TempDir(), false), protocol.NewTask("p", p))
		if o.sum.Failed != 1 || !strings.Contains(o.byID["p"].Err, "not ready after") {
			t.Fatalf("%+v: %+v", p, o.byID["p"])
		}
	}
	if o := run(t, newTestEnv(t.TempDir(), true), protocol.NewTask("p", protocol.ProbeParams{Command: []string{"false"}})); o.sum.Skipped != 1 {
		t.Fatal("probe ran in check mode")
	}
}

func TestFacts(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"), 0644)
	o := run(t, newTestEnv(root, true), protocol.Task{ID: "facts", Kind: protocol.KindFacts})
	f := o.byID["facts"].Facts
	if f == nil || f.OSID != "debian" || f.OSVersion != "12" || f.CPUs < 1 || f.MemTotalBytes == 0 || f.Kernel == "" || f.Hostname == "" {
		t.Fatalf("facts: %+v", f)
	}
}

func TestUnifiedDiff(t *testing.T) {
	old := "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"
	new := "a\nB\nc\nd\ne\nf\ng\nh\ni\nj\nk\n"
	got := UnifiedDiff("a", "b", old, new)
	want := "--- a\n+++ b\n@@ -1,5 +1,5 @@\n a\n-b\n+B\n c\n d\n e\n@@ -8,3 +8,4 @@\n h\n i\n j\n+k\n"
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if d := UnifiedDiff("a", "b", "x", "x\n"); !strings.Contains(d, "No newline") {
		t.Fatalf("%q", d)
	}
}

func TestIdentity(t *testing.T) {
	root := t.TempDir()
	id := func(v string) protocol.Task {
		return protocol.NewTask("id", protocol.IdentityParams{Path: "/var/lib/drover/c/myid", Value: v, Name: "myid", DataDir: "/var/lib/drover/c"})
	}
	env := func(check bool) *Env { return newTestEnv(root, check, "/var/lib/drover") }
	if o := run(t, env(false), id("1")); o.sum.Changed != 1 {
		t.Fatalf("%+v", o.events)
	}
	if o := run(t, env(false), id("1")); o.sum.Changed != 0 {
		t.Fatalf("%+v", o.events)
	}
	// No data yet: renumbering is allowed.
	if o := run(t, env(false), id("2")); o.sum.Changed != 1 || !strings.Contains(o.byID["id"].Msg, "myid 1 -> 2") {
		t.Fatalf("%+v", o.events)
	}
	os.MkdirAll(filepath.Join(root, "var/lib/drover/c/member"), 0755)
	for _, check := range []bool{true, false} {
		o := run(t, env(check), id("3"))
		if o.sum.Failed != 1 || !strings.Contains(o.byID["id"].Err, "refusing to change myid of this node from 2 to 3") {
			t.Fatalf("check=%v: %+v", check, o.byID["id"])
		}
	}
	if got := read(t, filepath.Join(root, "var/lib/drover/c/myid")); got != "2\n" {
		t.Fatalf("id file %q", got)
	}
}
