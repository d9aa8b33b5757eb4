// Package protocol holds the JSON types exchanged between the controller and drover-agent.
//
// The controller runs one agent process per host per phase: it writes one Request as JSON on the
// agent's stdin and reads Events as JSON lines on its stdout, the last one of Status "done" with the
// Summary. A change to any type here that an older peer would misread bumps ProtocolVersion; the
// controller replaces an agent that reports another version instead of talking to it.
package protocol

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ProtocolVersion is printed by `drover-agent --protocol` and carried in every Request.
const ProtocolVersion = 1

// Default node-side locations. The agent and every artifact live content-addressed in StoreDir
// with stable symlinks in BinDir.
const (
	StoreDir  = "/opt/drover/store"
	BinDir    = "/opt/drover/bin"
	AgentPath = BinDir + "/drover-agent"
)

// Task kinds.
const (
	KindDirectory = "directory"
	KindFile      = "file"
	KindUser      = "user"
	KindGroup     = "group"
	KindArtifact  = "artifact"
	KindUnit      = "unit"
	KindService   = "service"
	KindProbe     = "probe"
	KindFacts     = "facts"
	KindIdentity  = "identity"
)

// Request is the whole task list of one host for one phase.
type Request struct {
	Version int  `json:"version"`
	Check   bool `json:"check,omitempty"` // report what would change, change nothing
	Diff    bool `json:"diff,omitempty"`  // include diffs in events
	// Owned lists the path prefixes this plan may write; a task writing elsewhere is refused.
	Owned []string `json:"owned,omitempty"`
	// Root rewrites every node path under this directory. Tests only.
	Root  string `json:"root,omitempty"`
	Tasks []Task `json:"tasks"`
}

// Task is one idempotent step. Params holds the kind's parameter struct (FileParams, ...).
type Task struct {
	ID     string          `json:"id"`
	Kind   string          `json:"kind"`
	Params json.RawMessage `json:"params,omitempty"`
	// OnlyIfChanged names earlier tasks of the same request (handler semantics). For a service
	// task it gates the restart: the service is restarted only when one of them changed in this
	// run (its state and enablement are ensured regardless). Any other task is skipped unless one
	// of them changed.
	OnlyIfChanged []string `json:"only_if_changed,omitempty"`
}

// NewTask builds a Task from a parameter struct; kind is taken from the params type.
func NewTask(id string, params Params) Task {
	b, err := json.Marshal(params)
	if err != nil {
		panic(fmt.Sprintf("protocol: marshal %T: %v", params, err)) // plain structs never fail
	}
	return Task{ID: id, Kind: params.Kind(), Params: b}
}

// Params is implemented by every task parameter struct.
type Params interface{ Kind() string }

// DirectoryParams ensures a directory exists with the given mode and ownership.
type DirectoryParams struct {
	Path  string `json:"path"`
	Mode  string `json:"mode,omitempty"` // octal, e.g. "0755"; empty: 0755 on create, else unmanaged
	Owner string `json:"owner,omitempty"`
	Group string `json:"group,omitempty"`
}

// FileParams ensures a regular file has exactly Content (written atomically).
type FileParams struct {
	Path    string `json:"path"`
	Content string `json:"content"`
	Mode    string `json:"mode,omitempty"` // default 0644
	Owner   string `json:"owner,omitempty"`
	Group   string `json:"group,omitempty"`
	Secret  bool   `json:"secret,omitempty"` // diff redacted
}

// UserParams ensures a system user exists (useradd --system, nologin shell).
type UserParams struct {
	Name  string `json:"name"`
	Group string `json:"group,omitempty"` // primary group (must exist); default: a group named like the user
	Home  string `json:"home,omitempty"`
	Shell string `json:"shell,omitempty"` // default /usr/sbin/nologin
}

// GroupParams ensures a system group exists.
type GroupParams struct {
	Name string `json:"name"`
}

// ArtifactParams points the stable symlink Link at StoreDir/SHA256 after verifying that file.
// The bytes are uploaded beforehand with `drover-agent put`.
type ArtifactParams struct {
	SHA256 string `json:"sha256"`
	Link   string `json:"link"` // e.g. /opt/drover/bin/drover-broker
}

// UnitParams writes a systemd unit file; formatting-only differences are not changes.
type UnitParams struct {
	Name    string `json:"name"`           // e.g. drover-broker.service
	Content string `json:"content"`        // rendered unit text
	Path    string `json:"path,omitempty"` // default /etc/systemd/system/<Name>
}

// Service states.
const (
	StateStarted   = "started"
	StateRestarted = "restarted" // restart every run unless gated by OnlyIfChanged
	StateStopped   = "stopped"
)

// ServiceParams drives a unit through systemd's D-Bus API. A daemon-reload runs first when a unit
// task changed earlier in the run.
type ServiceParams struct {
	Name    string `json:"name"`
	State   string `json:"state,omitempty"`   // started|restarted|stopped|"" (leave as is)
	Enabled *bool  `json:"enabled,omitempty"` // nil: leave as is
	Timeout string `json:"timeout,omitempty"` // job wait, Go duration, default 2m
}

// ProbeParams waits until exactly one of TCP, HTTP or Command succeeds, polling every Interval,
// failing after Timeout.
type ProbeParams struct {
	TCP      string   `json:"tcp,omitempty"`     // host:port accepts a connection
	HTTP     string   `json:"http,omitempty"`    // URL answers 200
	Command  []string `json:"command,omitempty"` // argv exits 0
	Timeout  string   `json:"timeout,omitempty"` // default 60s
	Interval string   `json:"interval,omitempty"`
}

// IdentityParams records a node's id (myid, broker.id) in Path. An id that differs from the recorded
// one is refused when DataDir already holds data: an inventory edit must never silently renumber a
// node that has state. Name is used in messages ("myid").
type IdentityParams struct {
	Path    string `json:"path"`
	Value   string `json:"value"`
	Name    string `json:"name,omitempty"`
	DataDir string `json:"data_dir,omitempty"`
	Owner   string `json:"owner,omitempty"`
	Group   string `json:"group,omitempty"`
	Mode    string `json:"mode,omitempty"` // default 0644
}

// FactsParams gathers node facts; EC2 additionally asks the instance metadata service.
type FactsParams struct {
	EC2 bool `json:"ec2,omitempty"`
}

func (DirectoryParams) Kind() string { return KindDirectory }
func (FileParams) Kind() string      { return KindFile }
func (UserParams) Kind() string      { return KindUser }
func (GroupParams) Kind() string     { return KindGroup }
func (ArtifactParams) Kind() string  { return KindArtifact }
func (UnitParams) Kind() string      { return KindUnit }
func (ServiceParams) Kind() string   { return KindService }
func (ProbeParams) Kind() string     { return KindProbe }
func (FactsParams) Kind() string     { return KindFacts }
func (IdentityParams) Kind() string  { return KindIdentity }

// Status of an event.
type Status string

const (
	StatusStarted Status = "started"
	StatusOK      Status = "ok"
	StatusChanged Status = "changed"
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped"
	StatusDone    Status = "done" // final event of a run, carries Summary
)

// Final reports whether the status ends a task.
func (s Status) Final() bool {
	return s == StatusOK || s == StatusChanged || s == StatusFailed || s == StatusSkipped
}

// Event is one JSON line on the agent's stdout.
type Event struct {
	Task    string        `json:"task,omitempty"`
	Kind    string        `json:"kind,omitempty"`
	Status  Status        `json:"status"`
	Diff    string        `json:"diff,omitempty"`
	Msg     string        `json:"msg,omitempty"`
	Err     string        `json:"err,omitempty"`
	Facts   *Facts        `json:"facts,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns,omitempty"`
	Summary *Summary      `json:"summary,omitempty"`
}

// Summary closes a run.
type Summary struct {
	OK      int    `json:"ok"` // includes changed, as Ansible counts
	Changed int    `json:"changed"`
	Failed  int    `json:"failed"`
	Skipped int    `json:"skipped"`
	Version string `json:"version,omitempty"`
	Check   bool   `json:"check,omitempty"`
}

// Facts describe a node.
type Facts struct {
	Hostname       string            `json:"hostname"`
	OSID           string            `json:"os_id,omitempty"` // os-release ID: debian, amzn, ubuntu ...
	OSVersion      string            `json:"os_version,omitempty"`
	OSPretty       string            `json:"os_pretty,omitempty"`
	Kernel         string            `json:"kernel,omitempty"`
	Arch           string            `json:"arch,omitempty"`
	CPUs           int               `json:"cpus"`
	MemTotalBytes  uint64            `json:"mem_total_bytes"`
	IPv4           []string          `json:"ipv4,omitempty"`
	SystemdVersion string            `json:"systemd_version,omitempty"`
	EC2            map[string]string `json:"ec2,omitempty"`
}

// Owns reports whether path lies inside one of the owned prefixes.
func Owns(owned []string, path string) bool {
	for _, p := range owned {
		p = strings.TrimRight(p, "/")
		if p == "" { // "/" owns everything
			return true
		}
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}
