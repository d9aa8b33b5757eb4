package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/drover/drover/provisioner/inventory"
	"github.com/drover/drover/provisioner/sshx"
)

func init() {
	Register(&Command{Name: "inventory", Summary: "show resolved hosts: role, id, groups, vars, ssh endpoint", Run: runInventory})
}

type inventoryHostJSON struct {
	Name     string            `json:"name"`
	Role     inventory.Role    `json:"role"`
	ID       int               `json:"id"`
	IDSource string            `json:"id_source,omitempty"`
	Groups   []string          `json:"groups"`
	Vars     map[string]any    `json:"vars"`
	Defined  string            `json:"defined_at"`
	SSH      *sshx.Endpoint    `json:"ssh,omitempty"`
	SSHError string            `json:"ssh_error,omitempty"`
	Become   bool              `json:"become"`
	VarFrom  map[string]string `json:"var_sources,omitempty"`
}

func runInventory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("inventory", flag.ContinueOnError)
	var hf HostFlags
	hf.Register(fs)
	list := fs.Bool("list", false, "list the resolved hosts (the default action)")
	output := fs.String("output", "table", "output format: table or json")
	sources := fs.Bool("sources", false, "show where each variable was defined (file:line)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drover inventory -i FILE --list [--limit P] [--output table|json] [--ssh-config F]\n\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	_ = list
	if *output != "table" && *output != "json" {
		fmt.Fprintf(stderr, "drover inventory: --output must be table or json\n")
		return ExitFailed
	}
	_, hosts, err := hf.Load()
	if err != nil {
		fmt.Fprintf(stderr, "drover inventory: %v\n", err)
		return ExitFailed
	}
	pool, err := hf.Pool(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "drover inventory: %v\n", err)
		return ExitFailed
	}
	defer pool.Close()

	code := ExitOK
	var out []inventoryHostJSON
	for _, h := range hosts {
		j := inventoryHostJSON{Name: h.Name, Role: h.Role, ID: h.ID, IDSource: h.IDSource, Groups: h.Groups, Vars: h.Vars, Defined: h.Pos.String()}
		if j.Groups == nil {
			j.Groups = []string{}
		}
		t := sshx.TargetFor(h)
		j.Become = t.Become
		if h.Connection == "local" {
			j.SSHError = "ansible_connection=local: not reached over ssh"
		} else if ep, err := pool.Resolve(t); err != nil {
			j.SSHError = err.Error()
			code = ExitFailed
		} else {
			j.SSH = ep
		}
		if *sources {
			j.VarFrom = map[string]string{}
			for k := range h.Vars {
				j.VarFrom[k] = h.Where(k)
			}
		}
		out = append(out, j)
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if out == nil {
			out = []inventoryHostJSON{}
		}
		if err := enc.Encode(map[string]any{"hosts": out}); err != nil {
			return ExitFailed
		}
		return code
	}

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tROLE\tID\tGROUPS\tSSH\tVIA")
	for _, j := range out {
		role := string(j.Role)
		id := fmt.Sprint(j.ID)
		if role == "" {
			role, id = "-", "-"
		}
		endpoint, via := j.SSHError, ""
		if j.SSH != nil {
			endpoint = j.SSH.String()
			via = j.SSH.Via()
		}
		if via == "" {
			via = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", j.Name, role, id, strings.Join(j.Groups, ","), endpoint, via)
	}
	tw.Flush()
	for _, j := range out {
		fmt.Fprintf(stdout, "\n%s (%s)\n", j.Name, j.Defined)
		if j.Role != "" {
			fmt.Fprintf(stdout, "  id:          %d (%s)\n", j.ID, j.IDSource)
		}
		if j.SSH != nil {
			ids := strings.Join(j.SSH.IdentityFiles, ", ")
			if ids == "" {
				ids = "(defaults: ~/.ssh/id_ed25519, id_ecdsa, id_rsa)"
			}
			if j.SSH.IdentitiesOnly {
				ids += " [IdentitiesOnly]"
			}
			fmt.Fprintf(stdout, "  ssh:         %s  become=%v\n", j.SSH.String(), j.Become)
			for i, hop := range j.SSH.Chain() {
				fmt.Fprintf(stdout, "  jump %d:      %s\n", i+1, hop.String())
			}
			fmt.Fprintf(stdout, "  identity:    %s\n", ids)
			fmt.Fprintf(stdout, "  known_hosts: %s (StrictHostKeyChecking %s)\n", strings.Join(j.SSH.KnownHostsFiles, " "), j.SSH.StrictHostKeyChecking)
		} else {
			fmt.Fprintf(stdout, "  ssh:         %s\n", j.SSHError)
		}
		keys := make([]string, 0, len(j.Vars))
		for k := range j.Vars {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v, _ := json.Marshal(j.Vars[k])
			line := fmt.Sprintf("  %s = %s", k, v)
			if j.VarFrom != nil {
				line += "    # " + j.VarFrom[k]
			}
			fmt.Fprintln(stdout, line)
		}
	}
	return code
}
