package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/drover/drover/agent/protocol"
	"github.com/drover/drover/agent/tasks"
	"github.com/drover/drover/provisioner/inventory"
	"github.com/drover/drover/provisioner/plan"
	"github.com/drover/drover/provisioner/sshx"
)

// renderAnsible writes, under dir, the inventory and per-host files the playbook in bench/ansible
// uses. Every value comes from drover's own renderer: plan.Tasks for each host of the drover
// inventory, resolved through the same ssh_config, so Ansible writes the very bytes, modes and
// owners drover's agent writes. It returns the generated inventory's path.
func renderAnsible(dir, droverInv, sshConfig, binDir string) (string, error) {
	inv, err := inventory.Load(droverInv)
	if err != nil {
		return "", err
	}
	pool, err := sshx.NewPool(sshx.Options{ConfigFile: sshConfig})
	if err != nil {
		return "", err
	}
	defer pool.Close()
	var cluster plan.Cluster
	nodes := map[string]plan.Node{}
	roles := map[string]string{}
	for _, h := range inv.Hosts {
		role := string(h.Role)
		if role != plan.RoleCoordinator && role != plan.RoleBroker {
			continue
		}
		ep, err := pool.Resolve(sshx.TargetFor(h))
		if err != nil {
			return "", fmt.Errorf("%s: %w", h.Name, err)
		}
		addr := ep.HostName
		if v, ok := h.Vars["cluster_address"]; ok && fmt.Sprint(v) != "" {
			addr = fmt.Sprint(v)
		}
		n := plan.Node{Host: h.Name, ID: h.ID, Address: addr, Vars: h.Vars}
		nodes[h.Name], roles[h.Name] = n, role
		if role == plan.RoleCoordinator {
			cluster.Coordinators = append(cluster.Coordinators, n)
		} else {
			cluster.Brokers = append(cluster.Brokers, n)
		}
	}
	bins := map[string]string{plan.RoleCoordinator: "drover-coordinator", plan.RoleBroker: "drover-broker"}
	shas := map[string]string{}
	for role, name := range bins {
		p, err := filepath.Abs(filepath.Join(binDir, name))
		if err != nil {
			return "", err
		}
		s, err := tasks.HashFile(p)
		if err != nil {
			return "", err
		}
		bins[role], shas[role] = p, s
	}

	groups := map[string]map[string]any{"coordinators": {}, "brokers": {}}
	for _, h := range inv.Hosts {
		role, ok := roles[h.Name]
		if !ok {
			continue
		}
		tasks, err := plan.Tasks(cluster, nodes[h.Name], role, shas[role])
		if err != nil {
			return "", err
		}
		files := filepath.Join(dir, "files", h.Name)
		if err := os.MkdirAll(files, 0o755); err != nil {
			return "", err
		}
		hv, err := hostVars(tasks, files)
		if err != nil {
			return "", fmt.Errorf("%s: %w", h.Name, err)
		}
		hv["bin_src"], hv["bin_sha256"] = bins[role], shas[role]
		if role == plan.RoleCoordinator {
			hv["wait_port"] = plan.ClientPort
			groups["coordinators"][h.Name] = hv
		} else {
			port := plan.KafkaPort
			if v, ok := h.Vars["kafka_port"]; ok {
				port, _ = strconv.Atoi(fmt.Sprint(v))
			}
			hv["wait_port"] = port
			groups["brokers"][h.Name] = hv
		}
	}
	doc := map[string]any{"all": map[string]any{
		"vars": map[string]any{
			"ansible_user":               "ec2-user",
			"ansible_become":             true,
			"ansible_python_interpreter": "/usr/bin/python3",
			// The fleet's ssh_config gives HostName, IdentityFile and the known_hosts file.
			"ansible_ssh_common_args": "-F " + sshConfig,
		},
		"children": map[string]any{
			"coordinators": map[string]any{"hosts": groups["coordinators"]},
			"brokers":      map[string]any{"hosts": groups["brokers"]},
		},
	}}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "inventory.json") // JSON is YAML: Ansible's yaml inventory plugin reads it
	return path, os.WriteFile(path, b, 0o644)
}

// hostVars turns drover's task list for one host into the playbook's variables, writing the
// rendered file contents (config, environment, unit) under files.
func hostVars(tasks []protocol.Task, files string) (map[string]any, error) {
	hv := map[string]any{"files_dir": files}
	// The binary store and link dirs: drover's agent creates them (0755 root) when it stores the
	// first artifact; the playbook creates them explicitly.
	var dirs []map[string]string
	for _, t := range tasks {
		switch t.Kind {
		case protocol.KindGroup:
			var p protocol.GroupParams
			if err := json.Unmarshal(t.Params, &p); err != nil {
				return nil, err
			}
			hv["svc_group"] = p.Name
		case protocol.KindUser:
			var p protocol.UserParams
			if err := json.Unmarshal(t.Params, &p); err != nil {
				return nil, err
			}
			hv["svc_user"], hv["svc_user_group"], hv["svc_home"] = p.Name, p.Group, p.Home
		case protocol.KindDirectory:
			var p protocol.DirectoryParams
			if err := json.Unmarshal(t.Params, &p); err != nil {
				return nil, err
			}
			dirs = append(dirs, map[string]string{"path": p.Path, "mode": p.Mode, "owner": p.Owner, "group": p.Group})
		case protocol.KindIdentity:
			var p protocol.IdentityParams
			if err := json.Unmarshal(t.Params, &p); err != nil {
				return nil, err
			}
			hv["id_path"], hv["id_value"], hv["id_owner"], hv["id_group"] = p.Path, p.Value, p.Owner, p.Group
		case protocol.KindArtifact:
			var p protocol.ArtifactParams
			if err := json.Unmarshal(t.Params, &p); err != nil {
				return nil, err
			}
			hv["bin_link"] = p.Link
		case protocol.KindFile:
			var p protocol.FileParams
			if err := json.Unmarshal(t.Params, &p); err != nil {
				return nil, err
			}
			var prefix, file string
			switch t.ID {
			case plan.TaskConfig:
				prefix, file = "config", "config"
			case plan.TaskEnv:
				prefix, file = "env", "environment"
			default:
				return nil, fmt.Errorf("file task %q: not known to the playbook", t.ID)
			}
			if err := os.WriteFile(filepath.Join(files, file), []byte(p.Content), 0o644); err != nil {
				return nil, err
			}
			hv[prefix+"_path"], hv[prefix+"_mode"], hv[prefix+"_owner"], hv[prefix+"_group"] = p.Path, p.Mode, p.Owner, p.Group
		case protocol.KindUnit:
			var p protocol.UnitParams
			if err := json.Unmarshal(t.Params, &p); err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(files, "unit"), []byte(p.Content), 0o644); err != nil {
				return nil, err
			}
			hv["unit_name"] = p.Name
		case protocol.KindService:
			// enable + start: the playbook's start plays.
		default:
			return nil, fmt.Errorf("task kind %q: not known to the playbook", t.Kind)
		}
	}
	for _, d := range []string{"/opt/drover", protocol.StoreDir, protocol.BinDir} {
		dirs = append(dirs, map[string]string{"path": d, "mode": "0755", "owner": "root", "group": "root"})
	}
	hv["dirs"] = dirs
	for _, k := range []string{"svc_group", "svc_user", "id_path", "bin_link", "config_path", "env_path", "unit_name"} {
		if hv[k] == nil {
			return nil, fmt.Errorf("drover's plan has no %s any more: update bench/provision and bench/ansible", k)
		}
	}
	return hv, nil
}
