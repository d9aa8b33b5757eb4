package engine_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/drover/drover/provisioner/engine"
)

// countingConn counts the sessions a phase opens on a host.
type countingConn struct {
	*engine.LocalConn
	n atomic.Int32
}

func (c *countingConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	c.n.Add(1)
	return c.LocalConn.Run(ctx, cmd, stdin, stdout, stderr)
}

// Converge takes the long way on a bare node (agent upload, artifact push, apply) and a single
// session once the node holds the agent and the artifacts, with the same result either way.
func TestConvergeOneSessionWhenNothingIsMissing(t *testing.T) {
	f := newFleet(t, 2)
	conns := map[string]*countingConn{}
	for _, h := range f.hosts {
		c := &countingConn{LocalConn: h.Conn.(*engine.LocalConn)}
		conns[h.Name] = c
		h.Conn = c
	}
	// fresh Host values per run (counters are per run), over the same nodes
	hosts := func() []*engine.Host {
		var hs []*engine.Host
		for _, h := range f.hosts {
			hs = append(hs, &engine.Host{Name: h.Name, Conn: conns[h.Name]})
		}
		return hs
	}
	ph := f.phases("a=1\n")
	conv := &engine.Converge{Agent: ph[0].(*engine.EnsureAgent), Push: ph[1].(*engine.PushArtifacts), Apply: ph[2].(*engine.Apply)}

	res, out := run(t, &engine.Runner{Forks: 2}, hosts(), conv)
	if res.ExitCode() != 0 || res.Changed() == 0 {
		t.Fatalf("first converge: exit %d, changed %d\n%s", res.ExitCode(), res.Changed(), out)
	}
	for name, c := range conns {
		if c.n.Load() < 4 {
			t.Errorf("%s: a bare node took %d sessions; the long way needs more than one", name, c.n.Load())
		}
		c.n.Store(0)
	}

	res, out = run(t, &engine.Runner{Forks: 2}, hosts(), conv)
	if res.ExitCode() != 0 || res.Changed() != 0 {
		t.Fatalf("second converge: exit %d, changed %d\n%s", res.ExitCode(), res.Changed(), out)
	}
	for name, c := range conns {
		if got := c.n.Load(); got != 1 {
			t.Errorf("%s: a no-op converge took %d sessions, want 1", name, got)
		}
		c.n.Store(0)
	}

	// a config change still goes through the single session, and check mode changes nothing
	conv.Apply = f.phases("a=2\n")[2].(*engine.Apply)
	res, out = run(t, &engine.Runner{Forks: 2, Check: true, Diff: true}, hosts(), conv)
	if res.ExitCode() != 0 || !strings.Contains(out, "+a=2") {
		t.Fatalf("check: exit %d\n%s", res.ExitCode(), out)
	}
	res, _ = run(t, &engine.Runner{Forks: 2}, hosts(), conv)
	if res.Changed() != 2 {
		t.Fatalf("config change: changed %d, want one per host", res.Changed())
	}
	for name, c := range conns {
		if got := c.n.Load(); got != 2 {
			t.Errorf("%s: check + apply took %d sessions, want 2", name, got)
		}
	}
}
