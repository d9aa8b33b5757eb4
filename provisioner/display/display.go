// Package display renders engine events: a live tty view, plain lines, or JSON objects, then the
// recap. It also writes the trace-level run log.
package display

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drover/drover/agent/protocol"
	"github.com/drover/drover/provisioner/engine"
)

// Modes of --progress.
const (
	ModeAuto  = "auto"
	ModeTTY   = "tty"
	ModePlain = "plain"
	ModeJSON  = "json"
)

// Options configure a Display.
type Options struct {
	Mode    string    // auto (tty when Err is a terminal) | tty | plain | json
	Out     io.Writer // recap, and the JSON events in json mode (stdout)
	Err     io.Writer // progress (stderr)
	Diff    bool      // print diffs of changed tasks
	Verbose int       // -v: also print ok tasks (plain/tty)
	RunLog  string    // path printed when the run fails
}

// Display is an engine.Sink that renders progress and, in Finish, the recap.
type Display struct {
	o    Options
	mode string
	mu   sync.Mutex

	// tty state
	live     map[string]*liveHost
	order    []string
	drawn    int
	stop     chan struct{}
	stopped  chan struct{}
	width    int
	finished bool
}

type liveHost struct {
	phase, step string
	start       time.Time
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// New returns a Display for o; the caller passes it as Runner.Sink and calls Finish.
func New(o Options) (*Display, error) {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Err == nil {
		o.Err = os.Stderr
	}
	mode := o.Mode
	switch mode {
	case "", ModeAuto:
		mode = ModePlain
		if IsTerminal(o.Err) && os.Getenv("TERM") != "dumb" {
			mode = ModeTTY
		}
	case ModeTTY, ModePlain, ModeJSON:
	default:
		return nil, fmt.Errorf("--progress %q: want auto, tty, plain or json", o.Mode)
	}
	d := &Display{o: o, mode: mode, live: map[string]*liveHost{}, width: 120}
	if mode == ModeTTY {
		if f, ok := o.Err.(*os.File); ok {
			if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil && ws.Col > 20 {
				d.width = int(ws.Col)
			}
		}
		d.stop, d.stopped = make(chan struct{}), make(chan struct{})
		go d.ticker()
	}
	return d, nil
}

// Mode returns the resolved mode.
func (d *Display) Mode() string { return d.mode }

// Handle implements engine.Sink.
func (d *Display) Handle(ev engine.Event) {
	if ev.Type == engine.EventLog {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.mode {
	case ModeJSON:
		d.json(ev)
	case ModePlain:
		for _, l := range d.lines(ev) {
			fmt.Fprintln(d.o.Err, l)
		}
	case ModeTTY:
		d.tty(ev)
	}
}

func (d *Display) json(ev engine.Event) {
	if ev.Type == engine.EventStep || ev.Type == engine.EventHostStart {
		return
	}
	type out struct {
		engine.Event
		Recap []RecapRow `json:"recap,omitempty"`
		Exit  *int       `json:"exit_code,omitempty"`
	}
	o := out{Event: ev}
	if ev.Type == engine.EventRunDone && ev.Result != nil {
		o.Recap = Recap(ev.Result)
		c := ev.Result.ExitCode()
		o.Exit = &c
	}
	b, err := json.Marshal(o)
	if err == nil {
		d.o.Out.Write(append(b, '\n'))
	}
}

// lines renders an event as permanent plain lines ("host | ...").
func (d *Display) lines(ev engine.Event) []string {
	switch ev.Type {
	case engine.EventRunStart:
		mode := ""
		if ev.Check {
			mode = " (check mode: nothing will change)"
		}
		return []string{fmt.Sprintf("drover: %d hosts%s", len(ev.Hosts), mode)}
	case engine.EventPhaseStart:
		return []string{fmt.Sprintf("== %s (%d hosts)", ev.Phase, len(ev.Hosts))}
	case engine.EventPhaseDone:
		if ev.Err != "" {
			return []string{"== " + ev.Phase + ": " + ev.Err}
		}
	case engine.EventTask:
		t := ev.Task
		if t == nil || !t.Status.Final() {
			return nil
		}
		if t.Status == protocol.StatusOK && d.o.Verbose == 0 {
			return nil
		}
		l := fmt.Sprintf("%s | %s: %s", ev.Host, t.Status, t.Task)
		if t.Msg != "" {
			l += " (" + t.Msg + ")"
		}
		if t.Err != "" {
			l += ": " + t.Err
		}
		out := []string{l}
		if d.o.Diff && t.Diff != "" && (t.Status == protocol.StatusChanged || t.Status == protocol.StatusFailed) {
			for _, dl := range strings.Split(strings.TrimRight(t.Diff, "\n"), "\n") {
				out = append(out, ev.Host+" | "+dl)
			}
		}
		return out
	case engine.EventHostFailed:
		kind := "FAILED"
		if ev.Unreachable {
			kind = "UNREACHABLE"
		}
		return []string{fmt.Sprintf("%s | %s at %s/%s: %s", ev.Host, kind, ev.Phase, ev.Step, ev.Err)}
	case engine.EventHostDone:
		if d.o.Verbose > 0 {
			return []string{fmt.Sprintf("%s | done %s in %s", ev.Host, ev.Phase, ev.Elapsed.Round(time.Millisecond))}
		}
	}
	return nil
}

func (d *Display) tty(ev engine.Event) {
	switch ev.Type {
	case engine.EventHostStart:
		if _, ok := d.live[ev.Host]; !ok {
			d.order = append(d.order, ev.Host)
		}
		d.live[ev.Host] = &liveHost{phase: ev.Phase, step: ev.Step, start: ev.Time}
	case engine.EventStep:
		if l := d.live[ev.Host]; l != nil {
			l.step = ev.Step
		}
	case engine.EventTask:
		if l := d.live[ev.Host]; l != nil && ev.Task != nil && ev.Task.Status == protocol.StatusStarted {
			l.step = ev.Task.Task
		}
	case engine.EventHostDone, engine.EventHostFailed:
		delete(d.live, ev.Host)
		for i, h := range d.order {
			if h == ev.Host {
				d.order = append(d.order[:i], d.order[i+1:]...)
				break
			}
		}
	}
	lines := d.lines(ev)
	if len(lines) == 0 && ev.Type != engine.EventHostStart && ev.Type != engine.EventHostDone && ev.Type != engine.EventHostFailed {
		return
	}
	d.clear()
	for _, l := range lines {
		fmt.Fprintln(d.o.Err, colorize(l))
	}
	d.draw()
}

func colorize(l string) string {
	switch {
	case strings.Contains(l, "| FAILED") || strings.Contains(l, "| failed") || strings.Contains(l, "| UNREACHABLE"):
		return "\x1b[31m" + l + "\x1b[0m"
	case strings.Contains(l, "| changed"):
		return "\x1b[33m" + l + "\x1b[0m"
	case strings.HasPrefix(l, "=="):
		return "\x1b[1m" + l + "\x1b[0m"
	}
	if i := strings.Index(l, " | "); i > 0 {
		rest := l[i+3:]
		switch {
		case strings.HasPrefix(rest, "+"):
			return l[:i+3] + "\x1b[32m" + rest + "\x1b[0m"
		case strings.HasPrefix(rest, "-"):
			return l[:i+3] + "\x1b[31m" + rest + "\x1b[0m"
		}
	}
	return l
}

const maxLive = 20

// clear erases the live area (cursor is at its end).
func (d *Display) clear() {
	if d.drawn > 0 {
		fmt.Fprintf(d.o.Err, "\x1b[%dA\r\x1b[J", d.drawn)
		d.drawn = 0
	}
}

func (d *Display) draw() {
	if d.finished {
		return
	}
	var b strings.Builder
	n := 0
	now := time.Now()
	hosts := append([]string(nil), d.order...)
	for i, h := range hosts {
		if i == maxLive {
			fmt.Fprintf(&b, "  ... and %d more hosts in flight\n", len(hosts)-maxLive)
			n++
			break
		}
		l := d.live[h]
		line := fmt.Sprintf("  %-24s %s › %s  %s", h, l.phase, l.step, now.Sub(l.start).Round(100*time.Millisecond))
		if len(line) > d.width-1 {
			line = line[:d.width-1]
		}
		b.WriteString(line + "\n")
		n++
	}
	fmt.Fprint(d.o.Err, b.String())
	d.drawn = n
}

func (d *Display) ticker() {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	defer close(d.stopped)
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.mu.Lock()
			if len(d.order) > 0 || d.drawn > 0 {
				d.clear()
				d.draw()
			}
			d.mu.Unlock()
		}
	}
}

// Finish stops the live view and prints the recap (and, on failure, the run log path).
func (d *Display) Finish(res *engine.Result) {
	if d.stop != nil {
		close(d.stop)
		<-d.stopped
		d.stop = nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.clear()
	d.finished = true
	if res == nil {
		return
	}
	w := d.o.Out
	if d.mode == ModeJSON {
		w = d.o.Err // stdout stays pure JSON; the run_done event carries the recap
	}
	PrintRecap(w, res)
	if res.ExitCode() != engine.ExitOK && d.o.RunLog != "" {
		fmt.Fprintf(d.o.Err, "run log: %s\n", d.o.RunLog)
	}
}

// RecapRow is one host's line of the recap.
type RecapRow struct {
	Host        string        `json:"host"`
	OK          int           `json:"ok"`
	Changed     int           `json:"changed"`
	Unreachable int           `json:"unreachable"`
	Failed      int           `json:"failed"`
	Skipped     int           `json:"skipped"`
	Duration    time.Duration `json:"duration_ns"`
	Error       string        `json:"error,omitempty"`
}

// Recap returns the recap rows in host name order.
func Recap(res *engine.Result) []RecapRow {
	rows := make([]RecapRow, 0, len(res.Hosts))
	for _, h := range res.Hosts {
		s := h.Stats()
		r := RecapRow{Host: h.Name, OK: s.OK, Changed: s.Changed, Unreachable: s.Unreachable, Failed: s.Failed, Skipped: s.Skipped, Duration: s.Duration}
		if e := h.Err(); e != nil {
			r.Error = e.Error()
		}
		rows = append(rows, r)
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Host < rows[j].Host })
	return rows
}

// PrintRecap writes the recap table, then Ansible's recap lines, then the host errors.
func PrintRecap(w io.Writer, res *engine.Result) {
	rows := Recap(res)
	hw := len("HOST")
	for _, r := range rows {
		hw = max(hw, len(r.Host))
	}
	fmt.Fprintf(w, "\n%-*s  %4s  %7s  %11s  %6s  %7s  %9s\n", hw, "HOST", "OK", "CHANGED", "UNREACHABLE", "FAILED", "SKIPPED", "DURATION")
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s  %4d  %7d  %11d  %6d  %7d  %9s\n", hw, r.Host, r.OK, r.Changed, r.Unreachable, r.Failed, r.Skipped, r.Duration.Round(time.Millisecond))
	}
	fmt.Fprintf(w, "\nPLAY RECAP %s\n", strings.Repeat("*", 60))
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s : ok=%-4d changed=%-4d unreachable=%-4d failed=%-4d skipped=%-4d\n", hw, r.Host, r.OK, r.Changed, r.Unreachable, r.Failed, r.Skipped)
	}
	errs := res.HostErrors()
	if len(errs) > 0 || res.RunErr != nil {
		fmt.Fprintln(w)
		for _, e := range errs {
			fmt.Fprintln(w, "error:", e.Error())
		}
		if res.RunErr != nil {
			fmt.Fprintln(w, "error:", res.RunErr)
		}
	}
	fmt.Fprintf(w, "\n%d hosts, %d changed, exit %d, %s\n", len(rows), res.Changed(), res.ExitCode(), res.Duration.Round(time.Millisecond))
}
