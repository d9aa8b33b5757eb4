package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drover/drover/provisioner/plan"
)

// The playbook's variables come from drover's own plan: every task kind of both roles must map,
// and the rendered files must hold the plan's bytes.
func TestHostVarsFromPlan(t *testing.T) {
	vars := map[string]any{"heap": "256m"}
	c := plan.Cluster{}
	for i := 1; i <= 3; i++ {
		c.Coordinators = append(c.Coordinators, plan.Node{Host: "zk", ID: i, Address: "10.0.0.1", Vars: vars})
		c.Brokers = append(c.Brokers, plan.Node{Host: "b", ID: i + 3, Address: "10.0.0.4", Vars: vars})
	}
	sha := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		role string
		self plan.Node
		dirs int
	}{{plan.RoleCoordinator, c.Coordinators[0], 3 + 3}, {plan.RoleBroker, c.Brokers[0], 4 + 3}} {
		tasks, err := plan.Tasks(c, tc.self, tc.role, sha)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		hv, err := hostVars(tasks, dir)
		if err != nil {
			t.Fatalf("%s: %v", tc.role, err)
		}
		if got := len(hv["dirs"].([]map[string]string)); got != tc.dirs {
			t.Errorf("%s: %d dirs, want %d", tc.role, got, tc.dirs)
		}
		cfg, _ := plan.CoordinatorConfig(c, tc.self)
		if tc.role == plan.RoleBroker {
			cfg, _ = plan.BrokerConfig(c, tc.self)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "config")); err != nil || string(b) != cfg {
			t.Errorf("%s: config file differs from the plan's: %v", tc.role, err)
		}
		svc := plan.Services[tc.role]
		if hv["unit_name"] != svc.Unit || hv["config_path"] != svc.Config || hv["svc_user"] != svc.User || hv["id_path"] != svc.IDFile {
			t.Errorf("%s: vars %v", tc.role, hv)
		}
	}
}

func TestRecaps(t *testing.T) {
	d, changed, err := droverRecap("...\nPLAY RECAP ***\nnode1 : ok=3\n\n6 hosts, 0 changed, exit 0, 812ms\n")
	if err != nil || changed != 0 || d != 812*time.Millisecond {
		t.Fatalf("drover recap: %v %d %v", d, changed, err)
	}
	if _, _, err := droverRecap("6 hosts, 2 changed, exit 2, 1.5s\n"); err == nil {
		t.Fatal("exit 2 not reported")
	}
	out := "PLAY RECAP ****\nnode1                      : ok=11   changed=1    unreachable=0    failed=0    skipped=0\n" +
		"node2                      : ok=11   changed=0    unreachable=0    failed=0    skipped=0\n"
	if n, err := ansibleRecap(out); err != nil || n != 1 {
		t.Fatalf("ansible recap: %d %v", n, err)
	}
	if _, err := ansibleRecap("node1 : ok=1 changed=0 unreachable=1 failed=0\n"); err == nil {
		t.Fatal("unreachable not reported")
	}
}
