package main

import (
	"encoding/json"
	"testing"

	"github.com/drover/drover/agent/protocol"
	"github.com/drover/drover/provisioner/plan"
)

// The farm plan is a broker's plan with only the systemd-bound kinds swapped for file tasks that
// stay inside the paths a plan owns.
func TestWithoutSystemd(t *testing.T) {
	vars := map[string]any{"heap": "256m"}
	c := plan.Cluster{Coordinators: []plan.Node{{Host: "zk1", ID: 1, Address: "10.0.0.1", Vars: vars}}}
	b := plan.Node{Host: "h001", ID: 1, Address: "127.0.0.1", Vars: vars}
	c.Brokers = []plan.Node{b}
	tasks, err := plan.Tasks(c, b, plan.RoleBroker, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	got := withoutSystemd(tasks)
	if len(got) != len(tasks) {
		t.Fatalf("%d tasks, want %d", len(got), len(tasks))
	}
	for i, nt := range got {
		if nt.ID != tasks[i].ID {
			t.Fatalf("task %d: id %s, want %s", i, nt.ID, tasks[i].ID)
		}
		switch tasks[i].Kind {
		case protocol.KindUnit, protocol.KindService:
			if nt.Kind != protocol.KindFile {
				t.Fatalf("%s: kind %s, want file", nt.ID, nt.Kind)
			}
			var p protocol.FileParams
			_ = json.Unmarshal(nt.Params, &p)
			if !protocol.Owns(plan.Owned, p.Path) || p.Content == "" {
				t.Fatalf("%s: %s outside the owned paths or empty", nt.ID, p.Path)
			}
		default:
			if string(nt.Params) != string(tasks[i].Params) || nt.Kind != tasks[i].Kind {
				t.Fatalf("%s changed", nt.ID)
			}
		}
	}
}
