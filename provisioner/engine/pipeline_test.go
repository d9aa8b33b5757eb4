package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A pipeline lets a fast host run its later phases while a slow host is still in an earlier one,
// and stops a host at its first failed sub-phase.
func TestPipelineNoBarrierBetweenPhases(t *testing.T) {
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	slowRelease := make(chan struct{})
	a := Step("a", func(ctx context.Context, h *Host) error {
		if h.Name == "slow" {
			<-slowRelease
		}
		note(h.Name + ":a")
		return nil
	})
	b := Step("b", func(ctx context.Context, h *Host) error {
		note(h.Name + ":b")
		if h.Name == "fast" {
			close(slowRelease) // only possible if fast got here while slow still sits in a
		}
		if h.Name == "bad" {
			return errors.New("boom")
		}
		return nil
	})
	c := Step("c", func(ctx context.Context, h *Host) error { note(h.Name + ":c"); return nil })
	hosts := []*Host{{Name: "slow"}, {Name: "fast"}, {Name: "bad"}}
	r := &Runner{Forks: 3}
	done := make(chan *Result)
	go func() { done <- r.Run(context.Background(), hosts, Pipeline("abc", a, b, c)) }()
	var res *Result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("pipeline waited for every host between phases (deadlock)")
	}
	if res.ExitCode() != ExitFailed {
		t.Fatalf("exit %d, want %d", res.ExitCode(), ExitFailed)
	}
	e := hosts[2].Err()
	if e == nil || e.Step != "b" {
		t.Fatalf("bad host error %+v, want step b", e)
	}
	for _, s := range order {
		if s == "bad:c" {
			t.Fatal("a host went on after its failed sub-phase")
		}
	}
	if hosts[0].Failed() || hosts[1].Failed() {
		t.Fatal("healthy hosts failed")
	}
}
