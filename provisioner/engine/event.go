package engine

import (
	"sync"
	"time"

	"github.com/drover/drover/agent/protocol"
)

// EventType says what an Event reports.
type EventType string

const (
	EventRunStart   EventType = "run_start"   // Hosts, Check
	EventPhaseStart EventType = "phase_start" // Phase, Hosts
	EventHostStart  EventType = "host_start"  // a host begins a phase
	EventStep       EventType = "step"        // a phase moved to a named step (Host.Step)
	EventTask       EventType = "task"        // an agent or phase step event (Task)
	EventHostDone   EventType = "host_done"
	EventHostFailed EventType = "host_failed" // Err, Unreachable
	EventPhaseDone  EventType = "phase_done"
	EventLog        EventType = "log"      // trace line for the run log (Msg)
	EventRunDone    EventType = "run_done" // Result
)

// Event is what the engine tells the display and the run log.
type Event struct {
	Time        time.Time       `json:"time"`
	Type        EventType       `json:"type"`
	Phase       string          `json:"phase,omitempty"`
	Host        string          `json:"host,omitempty"`
	Step        string          `json:"step,omitempty"`
	Task        *protocol.Event `json:"task,omitempty"`
	Msg         string          `json:"msg,omitempty"`
	Err         string          `json:"error,omitempty"`
	Unreachable bool            `json:"unreachable,omitempty"`
	Elapsed     time.Duration   `json:"elapsed_ns,omitempty"`
	Hosts       []string        `json:"hosts,omitempty"`
	Check       bool            `json:"check,omitempty"`
	Result      *Result         `json:"-"`
}

// Sink receives events. Handle is called from many goroutines and must be safe for that.
type Sink interface{ Handle(Event) }

// SinkFunc adapts a function to a Sink.
type SinkFunc func(Event)

// Handle implements Sink.
func (f SinkFunc) Handle(ev Event) { f(ev) }

// Tee sends every event to each sink in order (nil sinks are skipped).
func Tee(sinks ...Sink) Sink {
	var s []Sink
	for _, x := range sinks {
		if x != nil {
			s = append(s, x)
		}
	}
	return SinkFunc(func(ev Event) {
		for _, x := range s {
			x.Handle(ev)
		}
	})
}

// Recorder is a Sink that keeps every event (tests).
type Recorder struct {
	mu     sync.Mutex
	Events []Event
}

// Handle implements Sink.
func (r *Recorder) Handle(ev Event) {
	r.mu.Lock()
	r.Events = append(r.Events, ev)
	r.mu.Unlock()
}

// Snapshot returns a copy of the events so far.
func (r *Recorder) Snapshot() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.Events...)
}
