// Package engine runs actions: ordered phases executed on many hosts in parallel (bounded by
// --forks), with typed per-host errors, a recap and Ansible's exit codes.
//
// A host stops at its first failed step: later phases skip it, the other hosts go on, unless the
// failing phase is fatal (FailureIsFatal), which stops the whole run after the phase.
package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/drover/drover/agent/protocol"
)

// Phase is one step of an action, run on every selected host.
type Phase interface {
	Title() string
	Run(ctx context.Context, h *Host) error
}

// Optional phase interfaces.
type (
	// Preparer runs once on the controller before the phase (hash and compress artifacts ...).
	// An error aborts the run.
	Preparer interface {
		Prepare(ctx context.Context, hosts []*Host) error
	}
	// Filter selects the hosts the phase applies to; others are not counted at all.
	Filter interface{ ShouldRun(h *Host) bool }
	// DryRunner replaces Run in check mode. A phase without it runs Run in check mode too and
	// must honour h.Check() itself.
	DryRunner interface {
		DryRun(ctx context.Context, h *Host) error
	}
	// CleanUpper runs after the phase on the hosts it ran on, even on failure.
	CleanUpper interface {
		CleanUp(ctx context.Context, hosts []*Host)
	}
	// Fatal phases stop the run when any host fails in them.
	Fatal interface{ FailureIsFatal() bool }
)

// HostError is the failure of one host at one step.
type HostError struct {
	Host        string
	Step        string
	Err         error
	Unreachable bool
}

func (e *HostError) Error() string {
	kind := "failed"
	if e.Unreachable {
		kind = "unreachable"
	}
	return fmt.Sprintf("%s: %s %s: %v", e.Host, e.Step, kind, e.Err)
}

func (e *HostError) Unwrap() error { return e.Err }

// Exit codes, as Ansible's.
const (
	ExitOK          = 0
	ExitError       = 1 // controller-side error (bad inventory, prepare failed)
	ExitFailed      = 2
	ExitUnreachable = 4
	ExitInterrupted = 130
)

// Runner runs phases over hosts.
type Runner struct {
	Forks int  // parallel hosts per phase; <= 0 means 5, as Ansible
	Check bool // check mode: phases report, change nothing
	Diff  bool // agent events carry diffs
	Sink  Sink // display and run log; may be nil
}

// Result of a run.
type Result struct {
	Hosts       []*Host
	Err         error // errors.Join of every *HostError and any run-level error
	RunErr      error // run-level error (prepare failed, canceled)
	Interrupted bool
	Started     time.Time
	Duration    time.Duration
}

// ExitCode maps the result to 0 ok / 2 failed hosts / 4 unreachable hosts / 130 interrupted /
// 1 controller error. Unreachable wins over failed, as in Ansible.
func (r *Result) ExitCode() int {
	if r.Interrupted {
		return ExitInterrupted
	}
	failed, unreachable := false, false
	for _, h := range r.Hosts {
		if e := h.Err(); e != nil {
			if e.Unreachable {
				unreachable = true
			} else {
				failed = true
			}
		}
	}
	switch {
	case unreachable:
		return ExitUnreachable
	case failed:
		return ExitFailed
	case r.RunErr != nil:
		return ExitError
	}
	return ExitOK
}

// HostErrors returns the per-host errors in host order.
func (r *Result) HostErrors() []*HostError {
	var out []*HostError
	for _, h := range r.Hosts {
		if e := h.Err(); e != nil {
			out = append(out, e)
		}
	}
	return out
}

// Changed is the total of changed steps over all hosts.
func (r *Result) Changed() int {
	n := 0
	for _, h := range r.Hosts {
		n += h.Stats().Changed
	}
	return n
}

// Run executes phases in order. It returns when every phase is done, the run is stopped by a
// fatal phase, or ctx is canceled (in-flight host steps are canceled through ctx).
func (r *Runner) Run(ctx context.Context, hosts []*Host, phases ...Phase) *Result {
	res := &Result{Hosts: hosts, Started: time.Now()}
	forks := r.Forks
	if forks <= 0 {
		forks = 5
	}
	sink := r.Sink
	if sink == nil {
		sink = SinkFunc(func(Event) {})
	}
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	sink.Handle(Event{Time: time.Now(), Type: EventRunStart, Hosts: names, Check: r.Check})

	for _, ph := range phases {
		if ctx.Err() != nil {
			res.RunErr = context.Cause(ctx)
			break
		}
		var active []*Host
		for _, h := range hosts {
			if h.Failed() {
				continue
			}
			if f, ok := ph.(Filter); ok && !f.ShouldRun(h) {
				continue
			}
			active = append(active, h)
		}
		if len(active) == 0 {
			continue
		}
		title := ph.Title()
		sink.Handle(Event{Time: time.Now(), Type: EventPhaseStart, Phase: title, Hosts: hostNames(active)})
		if p, ok := ph.(Preparer); ok {
			if err := p.Prepare(ctx, active); err != nil {
				res.RunErr = fmt.Errorf("%s: prepare: %w", title, err)
				sink.Handle(Event{Time: time.Now(), Type: EventPhaseDone, Phase: title, Err: res.RunErr.Error()})
				break
			}
		}
		phaseStart := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, forks)
		failed := false
		var fmu sync.Mutex
		for _, h := range active {
			wg.Add(1)
			go func() {
				defer wg.Done()
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					r.fail(h, title, context.Cause(ctx), false)
					return
				}
				defer func() { <-sem }()
				if !r.runHost(ctx, ph, title, h, sink) {
					fmu.Lock()
					failed = true
					fmu.Unlock()
				}
			}()
		}
		wg.Wait()
		if c, ok := ph.(CleanUpper); ok {
			c.CleanUp(context.WithoutCancel(ctx), active)
		}
		sink.Handle(Event{Time: time.Now(), Type: EventPhaseDone, Phase: title, Elapsed: time.Since(phaseStart)})
		if failed {
			if f, ok := ph.(Fatal); ok && f.FailureIsFatal() {
				res.RunErr = fmt.Errorf("%s failed on some hosts; stopping the run", title)
				break
			}
		}
	}
	if ctx.Err() != nil {
		res.RunErr = context.Cause(ctx)
		res.Interrupted = errors.Is(context.Cause(ctx), ErrInterrupted)
	}
	var errs []error
	for _, e := range res.HostErrors() {
		errs = append(errs, e)
	}
	if res.RunErr != nil {
		errs = append(errs, res.RunErr)
	}
	res.Err = errors.Join(errs...)
	res.Duration = time.Since(res.Started)
	sink.Handle(Event{Time: time.Now(), Type: EventRunDone, Result: res, Elapsed: res.Duration})
	return res
}

// runHost runs one phase on one host and reports whether it succeeded.
func (r *Runner) runHost(ctx context.Context, ph Phase, title string, h *Host, sink Sink) (ok bool) {
	rs := &runState{sink: sink, phase: title, check: r.Check, diff: r.Diff}
	h.mu.Lock()
	h.run = rs
	h.step, h.stepAt = title, time.Now()
	h.mu.Unlock()
	start := time.Now()
	h.emit(Event{Type: EventHostStart, Step: title})
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		if d, ok := ph.(DryRunner); ok && r.Check {
			err = d.DryRun(ctx, h)
		} else {
			err = ph.Run(ctx, h)
		}
	}()
	elapsed := time.Since(start)
	h.mu.Lock()
	h.stats.Duration += elapsed
	reported, failedReported := rs.reported, rs.failedReported
	h.mu.Unlock()
	if err == nil {
		if reported == 0 {
			h.Task(protocol.Event{Task: title, Status: protocol.StatusOK})
		}
		h.emit(Event{Type: EventHostDone, Step: title, Elapsed: elapsed})
		return true
	}
	unreachable := IsUnreachable(err)
	var he *HostError
	if !errors.As(err, &he) {
		step, _ := h.CurrentStep()
		he = &HostError{Host: h.Name, Step: step, Err: err}
	}
	he.Unreachable = he.Unreachable || unreachable
	h.mu.Lock()
	h.err = he
	switch {
	case he.Unreachable:
		h.stats.Unreachable++
	case !failedReported:
		h.stats.Failed++
	}
	h.mu.Unlock()
	h.emit(Event{Type: EventHostFailed, Step: he.Step, Err: he.Err.Error(), Unreachable: he.Unreachable, Elapsed: elapsed})
	return false
}

func (r *Runner) fail(h *Host, step string, err error, unreachable bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		h.err = &HostError{Host: h.Name, Step: step, Err: err, Unreachable: unreachable}
		h.stats.Failed++
	}
}

func hostNames(hs []*Host) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Name
	}
	return out
}

// Step adapts a function to a Phase.
func Step(title string, fn func(ctx context.Context, h *Host) error) Phase {
	return stepPhase{title, fn}
}

type stepPhase struct {
	title string
	fn    func(ctx context.Context, h *Host) error
}

func (s stepPhase) Title() string                          { return s.title }
func (s stepPhase) Run(ctx context.Context, h *Host) error { return s.fn(ctx, h) }

// Only restricts a phase to the hosts pred selects (e.g. one role), keeping its other interfaces
// reachable through Unwrap-style delegation.
func Only(ph Phase, pred func(h *Host) bool) Phase { return &onlyPhase{Phase: ph, pred: pred} }

type onlyPhase struct {
	Phase
	pred func(h *Host) bool
}

func (o *onlyPhase) ShouldRun(h *Host) bool {
	if f, ok := o.Phase.(Filter); ok && !f.ShouldRun(h) {
		return false
	}
	return o.pred(h)
}

func (o *onlyPhase) Prepare(ctx context.Context, hosts []*Host) error {
	if p, ok := o.Phase.(Preparer); ok {
		return p.Prepare(ctx, hosts)
	}
	return nil
}

func (o *onlyPhase) DryRun(ctx context.Context, h *Host) error {
	if d, ok := o.Phase.(DryRunner); ok {
		return d.DryRun(ctx, h)
	}
	return o.Phase.Run(ctx, h)
}

func (o *onlyPhase) CleanUp(ctx context.Context, hosts []*Host) {
	if c, ok := o.Phase.(CleanUpper); ok {
		c.CleanUp(ctx, hosts)
	}
}

func (o *onlyPhase) FailureIsFatal() bool {
	f, ok := o.Phase.(Fatal)
	return ok && f.FailureIsFatal()
}

// Fatalize makes a phase's failure stop the run.
func Fatalize(ph Phase) Phase {
	return &fatalPhase{onlyPhase{Phase: ph, pred: func(*Host) bool { return true }}}
}

type fatalPhase struct{ onlyPhase }

func (*fatalPhase) FailureIsFatal() bool { return true }

// Pipeline runs phases back to back on each host, without waiting for the other hosts between
// them: a fast host goes on while a slow one still connects. Use it for phases with no
// cross-host ordering (connect, agent, artifacts, independent applies); keep separate phases
// where the plan needs a barrier (brokers only after the coordinators' quorum). A host stops at
// its first failed sub-phase; sub-phase filters, dry runs, preparers and clean-ups are honoured.
func Pipeline(title string, phases ...Phase) Phase { return &pipeline{title: title, phases: phases} }

type pipeline struct {
	title  string
	phases []Phase
}

func (p *pipeline) Title() string { return p.title }

func runs(ph Phase, h *Host) bool {
	f, ok := ph.(Filter)
	return !ok || f.ShouldRun(h)
}

func (p *pipeline) ShouldRun(h *Host) bool {
	for _, ph := range p.phases {
		if runs(ph, h) {
			return true
		}
	}
	return false
}

func (p *pipeline) Prepare(ctx context.Context, hosts []*Host) error {
	for _, ph := range p.phases {
		pr, ok := ph.(Preparer)
		if !ok {
			continue
		}
		var mine []*Host
		for _, h := range hosts {
			if runs(ph, h) {
				mine = append(mine, h)
			}
		}
		if len(mine) > 0 {
			if err := pr.Prepare(ctx, mine); err != nil {
				return fmt.Errorf("%s: %w", ph.Title(), err)
			}
		}
	}
	return nil
}

func (p *pipeline) Run(ctx context.Context, h *Host) error {
	for _, ph := range p.phases {
		if !runs(ph, h) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		h.Step(ph.Title())
		var err error
		if d, ok := ph.(DryRunner); ok && h.Check() {
			err = d.DryRun(ctx, h)
		} else {
			err = ph.Run(ctx, h)
		}
		if err != nil {
			var he *HostError
			if !errors.As(err, &he) {
				step, _ := h.CurrentStep()
				err = &HostError{Host: h.Name, Step: step, Err: err, Unreachable: IsUnreachable(err)}
			}
			return err
		}
	}
	return nil
}

func (p *pipeline) CleanUp(ctx context.Context, hosts []*Host) {
	for _, ph := range p.phases {
		if c, ok := ph.(CleanUpper); ok {
			var mine []*Host
			for _, h := range hosts {
				if runs(ph, h) {
					mine = append(mine, h)
				}
			}
			c.CleanUp(ctx, mine)
		}
	}
}

func (p *pipeline) FailureIsFatal() bool {
	for _, ph := range p.phases {
		if f, ok := ph.(Fatal); ok && f.FailureIsFatal() {
			return true
		}
	}
	return false
}
