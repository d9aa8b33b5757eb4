// Package inventory reads Ansible-compatible inventories (YAML and INI) together with the
// group_vars/ and host_vars/ folders next to them, and resolves every host to the things drover
// needs: its role, its node id, its merged variables and its connection settings.
package inventory

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Role is what drover installs on a host.
type Role string

const (
	RoleNone        Role = ""
	RoleCoordinator Role = "coordinator"
	RoleBroker      Role = "broker"
)

// Pos is a position in an inventory or variables file.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

func (p Pos) String() string {
	if p.File == "" {
		return "<unknown>"
	}
	if p.Line <= 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Error is an inventory problem at a known position.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

func errorf(p Pos, format string, args ...any) error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

// Inventory is a loaded, resolved inventory.
type Inventory struct {
	// Path is the file the inventory was loaded from.
	Path string
	// Hosts in inventory order (order of first appearance).
	Hosts []*Host
	// Groups by name, always including "all" (and "ungrouped" when it has hosts).
	Groups map[string]*Group

	byName map[string]*Host
}

// Group is an inventory group. Hosts lists only the group's direct hosts; AllHosts includes the
// hosts of its descendants.
type Group struct {
	Name     string
	Parents  []string
	Children []string
	Hosts    []string
	// Vars are the group's own variables (inventory file, then group_vars/ on top).
	Vars  map[string]any
	Depth int
	Pos   Pos

	varSrc map[string]Pos
}

// Host is one resolved inventory host.
type Host struct {
	// Name is the inventory hostname; it is also the ssh_config alias the host is resolved through.
	Name string `json:"name"`
	// Vars are the merged variables (all < parent group < child group < host; see Load).
	Vars map[string]any `json:"vars"`
	// Groups the host belongs to, directly or through a child group, excluding "all", ordered by
	// depth then name.
	Groups []string `json:"groups"`
	Role   Role     `json:"role,omitempty"`
	// ID is myid for coordinators and broker.id for brokers; 0 for hosts without a role.
	ID int `json:"id"`
	// IDSource says where ID came from: "var myid", "host name", "index in group".
	IDSource string `json:"id_source,omitempty"`

	// Connection settings. Address is ansible_host, else Name. Port and User are 0/"" when the
	// inventory does not set them so that ssh_config can fill them in.
	Address    string `json:"address"`
	AddressSet bool   `json:"-"`
	Port       int    `json:"port,omitempty"`
	User       string `json:"user,omitempty"`
	KeyFile    string `json:"key_file,omitempty"`
	Become     *bool  `json:"become,omitempty"`
	// Connection is ansible_connection ("ssh" unless set, "local" runs on the controller).
	Connection string `json:"connection,omitempty"`
	// ProxyJump from drover_proxy_jump, or -J / -o ProxyJump= in ansible_ssh_common_args.
	ProxyJump string `json:"proxy_jump,omitempty"`

	// Pos is where the host was first defined.
	Pos Pos `json:"pos"`
	// VarPos says where each merged variable's winning value was defined.
	VarPos map[string]Pos `json:"-"`
}

// Host returns the host with that inventory name, or nil.
func (inv *Inventory) Host(name string) *Host { return inv.byName[name] }

// ByRole returns the hosts with the given role in inventory order.
func (inv *Inventory) ByRole(r Role) []*Host {
	var out []*Host
	for _, h := range inv.Hosts {
		if h.Role == r {
			out = append(out, h)
		}
	}
	return out
}

// rawInv is what the parsers produce before resolution.
type rawInv struct {
	file       string
	groups     map[string]*rawGroup
	groupOrder []string
	hosts      map[string]*rawHost
	hostOrder  []string
}

type rawGroup struct {
	name     string
	pos      Pos
	hosts    []string
	children []string
	vars     map[string]any
	varPos   map[string]Pos
}

type rawHost struct {
	name   string
	pos    Pos
	vars   map[string]any
	varPos map[string]Pos
}

func newRaw(file string) *rawInv {
	r := &rawInv{file: file, groups: map[string]*rawGroup{}, hosts: map[string]*rawHost{}}
	r.group("all", Pos{File: file})
	return r
}

func (r *rawInv) group(name string, p Pos) *rawGroup {
	g := r.groups[name]
	if g == nil {
		g = &rawGroup{name: name, pos: p, vars: map[string]any{}, varPos: map[string]Pos{}}
		r.groups[name] = g
		r.groupOrder = append(r.groupOrder, name)
	}
	return g
}

func (r *rawInv) host(name string, p Pos) *rawHost {
	h := r.hosts[name]
	if h == nil {
		h = &rawHost{name: name, pos: p, vars: map[string]any{}, varPos: map[string]Pos{}}
		r.hosts[name] = h
		r.hostOrder = append(r.hostOrder, name)
	}
	return h
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// Load reads an inventory file (YAML or INI, detected from the content) and the group_vars/ and
// host_vars/ folders next to it, and resolves every host.
//
// Variable precedence follows Ansible: group variables from the inventory file, then
// group_vars/all, then group_vars/<group>, then host variables from the inventory file, then
// host_vars/<host>; within each layer groups apply by depth (all < parent < child), groups of
// the same depth alphabetically, so the later (deeper) one wins.
func Load(path string) (*Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	raw, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	return resolve(raw, filepath.Dir(path), true)
}

// Parse parses inventory text without reading group_vars/host_vars; name is used in errors.
func Parse(name string, data []byte) (*Inventory, error) {
	raw, err := parse(name, data)
	if err != nil {
		return nil, err
	}
	return resolve(raw, "", false)
}

func parse(path string, data []byte) (*rawInv, error) {
	if isYAML(path, data) {
		return parseYAML(path, data)
	}
	return parseINI(path, data)
}

// isYAML decides the format: by extension when it says so, else by the first meaningful line
// (INI starts with a [section] or a bare host name; YAML with "key:").
func isYAML(path string, data []byte) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yml", ".yaml", ".json":
		return true
	case ".ini", ".cfg":
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		if t == "---" || t[0] == '{' {
			return true
		}
		if t[0] == '[' {
			return false
		}
		// "all:" / "kafka:" at the end of the first line is YAML; "host:2222" is INI.
		return strings.HasSuffix(t, ":") || strings.Contains(t, ": ")
	}
	return false
}

func resolve(raw *rawInv, dir string, withVarDirs bool) (*Inventory, error) {
	inv := &Inventory{Path: raw.file, Groups: map[string]*Group{}, byName: map[string]*Host{}}
	all := raw.groups["all"]
	// Groups that are nobody's child hang under all; hosts in no group other than all are
	// "ungrouped" (as in Ansible).
	isChild := map[string]bool{}
	for _, name := range raw.groupOrder {
		for _, c := range raw.groups[name].children {
			isChild[c] = true
		}
	}
	for _, name := range raw.groupOrder {
		g := raw.groups[name]
		for _, c := range g.children {
			if c == "all" {
				return nil, errorf(g.pos, "group %q cannot have \"all\" as a child", name)
			}
		}
	}
	for _, name := range raw.groupOrder {
		if name != "all" && !isChild[name] {
			all.children = appendUnique(all.children, name)
		}
	}
	inGroup := map[string]bool{}
	for _, name := range raw.groupOrder {
		if name == "all" {
			continue
		}
		for _, h := range raw.groups[name].hosts {
			inGroup[h] = true
		}
	}
	for _, h := range raw.hostOrder {
		if !inGroup[h] {
			ug := raw.group("ungrouped", raw.hosts[h].pos)
			ug.hosts = appendUnique(ug.hosts, h)
			if !isChild["ungrouped"] {
				all.children = appendUnique(all.children, "ungrouped")
			}
		}
	}
	all.hosts = nil

	for _, name := range raw.groupOrder {
		g := raw.groups[name]
		inv.Groups[name] = &Group{Name: name, Hosts: g.hosts, Children: g.children, Vars: map[string]any{}, Pos: g.pos, varSrc: map[string]Pos{}, Depth: -1}
		for k, v := range g.vars {
			inv.Groups[name].Vars[k] = v
			inv.Groups[name].varSrc[k] = g.varPos[k]
		}
	}
	for _, name := range raw.groupOrder {
		for _, c := range raw.groups[name].children {
			cg := inv.Groups[c]
			if cg == nil {
				return nil, errorf(raw.groups[name].pos, "group %q lists unknown child group %q", name, c)
			}
			cg.Parents = appendUnique(cg.Parents, name)
		}
	}
	// Depth = longest path from all; a cycle is an error.
	var depth func(name string, stack map[string]bool) (int, error)
	depth = func(name string, stack map[string]bool) (int, error) {
		g := inv.Groups[name]
		if g.Depth >= 0 {
			return g.Depth, nil
		}
		if stack[name] {
			return 0, errorf(g.Pos, "group %q is its own ancestor (cycle in children)", name)
		}
		stack[name] = true
		defer delete(stack, name)
		d := 0
		for _, p := range g.Parents {
			pd, err := depth(p, stack)
			if err != nil {
				return 0, err
			}
			if pd+1 > d {
				d = pd + 1
			}
		}
		g.Depth = d
		return d, nil
	}
	for _, name := range raw.groupOrder {
		if _, err := depth(name, map[string]bool{}); err != nil {
			return nil, err
		}
	}

	hostVarsFiles := map[string]varFile{}
	groupVarsFiles := map[string]varFile{}
	if withVarDirs {
		var err error
		if groupVarsFiles, err = loadVarDir(filepath.Join(dir, "group_vars")); err != nil {
			return nil, err
		}
		if hostVarsFiles, err = loadVarDir(filepath.Join(dir, "host_vars")); err != nil {
			return nil, err
		}
		for name, vf := range groupVarsFiles {
			if inv.Groups[name] == nil {
				// Ansible ignores these silently; a typo here silently loses settings, so say so.
				return nil, errorf(vf.pos, "group_vars for unknown group %q", name)
			}
		}
		for name, vf := range hostVarsFiles {
			if raw.hosts[name] == nil {
				return nil, errorf(vf.pos, "host_vars for unknown host %q", name)
			}
		}
	}

	// Every group a host belongs to, directly or via descendants.
	memberOf := map[string]map[string]bool{}
	var addUp func(host, group string)
	addUp = func(host, group string) {
		if memberOf[host][group] {
			return
		}
		memberOf[host][group] = true
		for _, p := range inv.Groups[group].Parents {
			addUp(host, p)
		}
	}
	for _, h := range raw.hostOrder {
		memberOf[h] = map[string]bool{"all": true}
	}
	for _, name := range raw.groupOrder {
		for _, h := range inv.Groups[name].Hosts {
			addUp(h, name)
		}
	}

	for _, hn := range raw.hostOrder {
		rh := raw.hosts[hn]
		var groups []*Group
		for g := range memberOf[hn] {
			groups = append(groups, inv.Groups[g])
		}
		sort.Slice(groups, func(i, j int) bool {
			if groups[i].Depth != groups[j].Depth {
				return groups[i].Depth < groups[j].Depth
			}
			return groups[i].Name < groups[j].Name
		})
		h := &Host{Name: hn, Vars: map[string]any{}, VarPos: map[string]Pos{}, Pos: rh.pos}
		set := func(vars map[string]any, src map[string]Pos, fallback Pos) {
			for k, v := range vars {
				h.Vars[k] = v
				if p, ok := src[k]; ok {
					h.VarPos[k] = p
				} else {
					h.VarPos[k] = fallback
				}
			}
		}
		for _, g := range groups {
			set(g.Vars, g.varSrc, g.Pos)
		}
		for _, g := range groups {
			if vf, ok := groupVarsFiles[g.Name]; ok {
				set(vf.vars, vf.varPos, vf.pos)
			}
		}
		set(rh.vars, rh.varPos, rh.pos)
		if vf, ok := hostVarsFiles[hn]; ok {
			set(vf.vars, vf.varPos, vf.pos)
		}
		for _, g := range groups {
			if g.Name != "all" {
				h.Groups = append(h.Groups, g.Name)
			}
		}
		if err := h.applyConnectionVars(); err != nil {
			return nil, err
		}
		inv.Hosts = append(inv.Hosts, h)
		inv.byName[hn] = h
	}
	// Group vars as seen by users: inventory vars overlaid by group_vars files.
	for name, vf := range groupVarsFiles {
		for k, v := range vf.vars {
			inv.Groups[name].Vars[k] = v
			inv.Groups[name].varSrc[k] = vf.varPos[k]
		}
	}
	if err := inv.assignRoles(); err != nil {
		return nil, err
	}
	if err := inv.assignIDs(); err != nil {
		return nil, err
	}
	return inv, nil
}

// AllHosts returns the hosts of g and of its descendants, in inventory order.
func (inv *Inventory) AllHosts(group string) []*Host {
	in := map[string]bool{}
	var walk func(string)
	seen := map[string]bool{}
	walk = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		g := inv.Groups[name]
		if g == nil {
			return
		}
		for _, h := range g.Hosts {
			in[h] = true
		}
		for _, c := range g.Children {
			walk(c)
		}
	}
	walk(group)
	var out []*Host
	for _, h := range inv.Hosts {
		if group == "all" || in[h.Name] {
			out = append(out, h)
		}
	}
	return out
}

func (h *Host) applyConnectionVars() error {
	h.Address = h.Name
	first := func(keys ...string) (string, any, bool) {
		for _, k := range keys {
			if v, ok := h.Vars[k]; ok && v != nil {
				return k, v, true
			}
		}
		return "", nil, false
	}
	if k, v, ok := first("ansible_host", "ansible_ssh_host"); ok {
		s, err := asString(v)
		if err != nil || s == "" {
			return errorf(h.VarPos[k], "host %s: %s must be a non-empty string", h.Name, k)
		}
		h.Address, h.AddressSet = s, true
	}
	if k, v, ok := first("ansible_port", "ansible_ssh_port"); ok {
		n, err := asInt(v)
		if err != nil || n < 1 || n > 65535 {
			return errorf(h.VarPos[k], "host %s: %s=%v is not a port number (1-65535)", h.Name, k, v)
		}
		h.Port = n
	}
	if k, v, ok := first("ansible_user", "ansible_ssh_user"); ok {
		s, err := asString(v)
		if err != nil {
			return errorf(h.VarPos[k], "host %s: %s must be a string", h.Name, k)
		}
		h.User = s
	}
	if k, v, ok := first("ansible_ssh_private_key_file", "ansible_private_key_file"); ok {
		s, err := asString(v)
		if err != nil {
			return errorf(h.VarPos[k], "host %s: %s must be a string", h.Name, k)
		}
		h.KeyFile = s
	}
	if k, v, ok := first("ansible_become", "drover_become"); ok {
		b, err := asBool(v)
		if err != nil {
			return errorf(h.VarPos[k], "host %s: %s=%v is not a boolean", h.Name, k, v)
		}
		h.Become = &b
	}
	h.Connection = "ssh"
	if k, v, ok := first("ansible_connection"); ok {
		s, _ := asString(v)
		switch s {
		case "ssh", "smart", "paramiko", "":
		case "local":
			h.Connection = "local"
		default:
			return errorf(h.VarPos[k], "host %s: ansible_connection=%v is not supported (ssh or local)", h.Name, v)
		}
	}
	if k, v, ok := first("drover_proxy_jump"); ok {
		s, err := asString(v)
		if err != nil {
			return errorf(h.VarPos[k], "host %s: %s must be a string", h.Name, k)
		}
		h.ProxyJump = s
	} else if _, v, ok := first("ansible_ssh_common_args", "ansible_ssh_extra_args"); ok {
		s, _ := asString(v)
		h.ProxyJump = proxyJumpFromArgs(s)
	}
	return nil
}

var proxyJumpRe = regexp.MustCompile(`(?:-J\s*|-o\s*['"]?ProxyJump[= ])([^\s'"]+)`)

// proxyJumpFromArgs pulls a jump host out of ssh arguments such as "-J bastion" or
// "-o ProxyJump=ec2-user@bastion"; a ProxyCommand is not interpreted.
func proxyJumpFromArgs(s string) string {
	m := proxyJumpRe.FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

var coordinatorGroups = map[string]bool{"zookeeper": true, "zk": true, "zkhosts": true, "coordinator": true, "coordinators": true}
var brokerGroups = map[string]bool{"kafka": true, "kafkahosts": true, "kafka_broker": true, "kafka_brokers": true, "broker": true, "brokers": true}

// RoleOfGroup returns the role a group name implies.
func RoleOfGroup(name string) Role {
	n := strings.ToLower(name)
	switch {
	case coordinatorGroups[n]:
		return RoleCoordinator
	case brokerGroups[n]:
		return RoleBroker
	}
	return RoleNone
}

func (inv *Inventory) assignRoles() error {
	for _, h := range inv.Hosts {
		if v, ok := h.Vars["drover_role"]; ok && v != nil {
			s, _ := asString(v)
			switch strings.ToLower(s) {
			case "coordinator", "zookeeper", "zk":
				h.Role = RoleCoordinator
			case "broker", "kafka":
				h.Role = RoleBroker
			case "none", "":
				h.Role = RoleNone
			default:
				return errorf(h.VarPos["drover_role"], "host %s: drover_role=%q is not coordinator, broker or none", h.Name, s)
			}
			continue
		}
		var byGroup = map[Role]string{}
		for _, g := range h.Groups {
			if r := RoleOfGroup(g); r != RoleNone {
				if _, ok := byGroup[r]; !ok {
					byGroup[r] = g
				}
			}
		}
		if len(byGroup) > 1 {
			return errorf(h.Pos, "host %s is in coordinator group %q and broker group %q; set drover_role: coordinator or broker on it to choose", h.Name, byGroup[RoleCoordinator], byGroup[RoleBroker])
		}
		for r := range byGroup {
			h.Role = r
		}
	}
	return nil
}

var trailingDigits = regexp.MustCompile(`([0-9]+)$`)

// IDFromName returns the number at the end of a host's short name: peter-zk03.foo.bar -> 3.
func IDFromName(name string) (int, bool) {
	short := name
	// An IP address has no short name worth reading digits from.
	if !isIPv4(name) {
		if i := strings.IndexByte(name, '.'); i > 0 {
			short = name[:i]
		}
	} else {
		return 0, false
	}
	m := trailingDigits.FindString(short)
	if m == "" || len(m) > 9 {
		return 0, false
	}
	n, err := strconv.Atoi(m)
	if err != nil {
		return 0, false
	}
	return n, true
}

func isIPv4(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			return false
		}
	}
	return true
}

func (inv *Inventory) assignIDs() error {
	for _, role := range []Role{RoleCoordinator, RoleBroker} {
		keys := []string{"broker_id", "drover_id"}
		lo, hi := 0, 1<<31-1
		if role == RoleCoordinator {
			// ZooKeeper's myid is 1..255.
			keys = []string{"myid", "zookeeper_id", "drover_id"}
			lo, hi = 1, 255
		}
		hosts := inv.ByRole(role)
		owner := map[int]*Host{}
		for i, h := range hosts {
			src := ""
			for _, k := range keys {
				v, ok := h.Vars[k]
				if !ok || v == nil {
					continue
				}
				n, err := asInt(v)
				if err != nil {
					return errorf(h.VarPos[k], "host %s: %s=%v is not an integer", h.Name, k, v)
				}
				if n < lo || n > hi {
					return errorf(h.VarPos[k], "host %s: %s=%d is out of range %d..%d", h.Name, k, n, lo, hi)
				}
				h.ID, src = n, "var "+k
				break
			}
			if src == "" {
				if n, ok := IDFromName(h.Name); ok && n >= lo && n <= hi {
					h.ID, src = n, "host name"
				} else {
					h.ID, src = i+1, "index in group"
				}
			}
			h.IDSource = src
			if o := owner[h.ID]; o != nil {
				return errorf(h.Pos, "%s id %d of host %s (%s) duplicates host %s (%s, %s); set %s on one of them",
					role, h.ID, h.Name, h.IDSource, o.Name, o.IDSource, o.Pos, keys[0])
			}
			owner[h.ID] = h
		}
	}
	return nil
}

// checkHostName rejects names that could never be addressed with --limit or ssh.
func checkHostName(name string) error {
	if name == "" {
		return fmt.Errorf("empty host name")
	}
	if strings.ContainsAny(name[:1], "!&~@-") {
		return fmt.Errorf("invalid host name %q: must not start with %q", name, name[:1])
	}
	for _, c := range name {
		if c <= ' ' || c == 0x7f || strings.ContainsRune(",*?[]#;='\"\\/", c) {
			return fmt.Errorf("invalid host name %q: character %q not allowed", name, c)
		}
	}
	return nil
}

// checkGroupName keeps group names usable in --limit patterns.
func checkGroupName(name string) error {
	if name == "" {
		return fmt.Errorf("empty group name")
	}
	if strings.ContainsAny(name[:1], "!&~@") {
		return fmt.Errorf("invalid group name %q: must not start with %q", name, name[:1])
	}
	for _, c := range name {
		if c <= ' ' || c == 0x7f || strings.ContainsRune(",:*?[]#;='\"\\/", c) {
			return fmt.Errorf("invalid group name %q: character %q not allowed", name, c)
		}
	}
	return nil
}
