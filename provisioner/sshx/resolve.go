package sshx

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/provisioner/inventory"
)

// Target is what the inventory says about a host. Empty fields are filled from ssh_config, then
// from defaults; set fields win over ssh_config (as with Ansible, which passes them to ssh).
type Target struct {
	// Name is the inventory host name, used in messages.
	Name string
	// Address is the address to dial (ansible_host); it overrides ssh_config's HostName. Empty
	// or equal to Name: dial whatever ssh_config's HostName says, else Name.
	Address   string
	Port      int
	User      string
	KeyFile   string
	ProxyJump string
	Become    bool
}

// TargetFor maps an inventory host to a Target.
func TargetFor(h *inventory.Host) Target {
	t := Target{Name: h.Name, Address: h.Address, Port: h.Port, User: h.User, KeyFile: h.KeyFile, ProxyJump: h.ProxyJump}
	if h.Become != nil {
		t.Become = *h.Become
	}
	return t
}

// Endpoint is a fully resolved SSH destination.
type Endpoint struct {
	Alias          string        `json:"alias"`
	HostName       string        `json:"hostname"`
	Port           int           `json:"port"`
	User           string        `json:"user"`
	IdentityFiles  []string      `json:"identity_files,omitempty"`
	IdentitiesOnly bool          `json:"identities_only,omitempty"`
	ConnectTimeout time.Duration `json:"-"`
	// KnownHostsFiles are UserKnownHostsFile entries (the first receives accepted keys) followed by
	// GlobalKnownHostsFile entries.
	KnownHostsFiles []string `json:"known_hosts_files,omitempty"`
	userKnownHosts  int
	// StrictHostKeyChecking: "yes", "accept-new" or "no" ("ask" is treated as "yes").
	StrictHostKeyChecking string `json:"strict_host_key_checking"`
	HostKeyAlias          string `json:"host_key_alias,omitempty"`
	// Jump is the hop this endpoint is reached through (nil: dialled directly).
	Jump *Endpoint `json:"jump,omitempty"`
}

// Addr is host:port to dial.
func (e *Endpoint) Addr() string { return net.JoinHostPort(e.HostName, strconv.Itoa(e.Port)) }

// String is user@host:port.
func (e *Endpoint) String() string { return e.User + "@" + e.Addr() }

// Chain lists the jump hosts from the first hop to the last (excluding e).
func (e *Endpoint) Chain() []*Endpoint {
	var out []*Endpoint
	for j := e.Jump; j != nil; j = j.Jump {
		out = append([]*Endpoint{j}, out...)
	}
	return out
}

// Via describes the jump chain, "" when direct: "ec2-user@bastion:22 -> admin@inner:22".
func (e *Endpoint) Via() string {
	var parts []string
	for _, j := range e.Chain() {
		parts = append(parts, j.String())
	}
	return strings.Join(parts, " -> ")
}

// key identifies a connection: the same destination through the same chain shares one.
func (e *Endpoint) key() string {
	k := e.String()
	if e.Jump != nil {
		k += " via " + e.Jump.key()
	}
	return k
}

func (e *Endpoint) knownHostsName() string {
	h := e.HostName
	if e.HostKeyAlias != "" {
		h = e.HostKeyAlias
	}
	return net.JoinHostPort(h, strconv.Itoa(e.Port))
}

// Resolve applies ssh_config and defaults to a target without connecting.
func (p *Pool) Resolve(t Target) (*Endpoint, error) {
	alias, addr := t.Name, t.Address
	if alias == "" {
		alias = addr
	}
	if addr == alias {
		addr = ""
	}
	if alias == "" {
		return nil, fmt.Errorf("resolve: empty host name")
	}
	return p.resolve(alias, addr, t.User, t.Port, t.KeyFile, t.ProxyJump, 0)
}

var simpleProxyCommand = regexp.MustCompile(`^ssh\s+(?:-q\s+)?(?:-[A-Za-z]\s*\S+\s+)*-W\s*%h:%p\s+(\S+)$`)

// resolve looks alias up in ssh_config. addr (ansible_host) overrides HostName; Host patterns
// match either the alias (the inventory name, as users write their ssh_config for ssh NAME) or
// addr (what Ansible itself would pass to ssh), so both styles of config apply.
func (p *Pool) resolve(alias, addr, user string, port int, keyFile, proxyJump string, depth int) (*Endpoint, error) {
	if depth > 8 {
		return nil, fmt.Errorf("resolve %s: ProxyJump chain longer than 8 hops (a loop?)", alias)
	}
	cfg := p.cfg.lookup(lookupCtx{alias: alias, addr: addr, user: user, localUser: p.localUser})
	get := func(k string) string {
		if v := cfg[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	ep := &Endpoint{Alias: alias, HostName: alias}
	if addr != "" {
		ep.HostName = addr
	} else if h := get("hostname"); h != "" {
		ep.HostName = expandTokens(h, tokenVals{host: alias, alias: alias})
	}
	ep.Port = 22
	if port > 0 {
		ep.Port = port
	} else if ps := get("port"); ps != "" {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("ssh config for %s: Port %q is not a port number", alias, ps)
		}
		ep.Port = n
	}
	ep.User = p.localUser
	if user != "" {
		ep.User = user
	} else if u := get("user"); u != "" {
		ep.User = u
	}
	tv := tokenVals{host: ep.HostName, alias: alias, port: strconv.Itoa(ep.Port), remoteUser: ep.User, localUser: p.localUser, home: p.home, localHost: p.localHost}
	expandPath := func(s string) string {
		return expandTilde(expandTokens(s, tv), p.home)
	}
	if keyFile != "" {
		ep.IdentityFiles = append(ep.IdentityFiles, expandPath(keyFile))
	}
	for _, f := range cfg["identityfile"] {
		if strings.EqualFold(f, "none") {
			continue
		}
		ep.IdentityFiles = appendUniq(ep.IdentityFiles, expandPath(f))
	}
	ep.IdentitiesOnly = strings.EqualFold(get("identitiesonly"), "yes")
	if s := get("connecttimeout"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			ep.ConnectTimeout = time.Duration(n) * time.Second
		}
	}
	ep.HostKeyAlias = get("hostkeyalias")

	userKH := cfg["userknownhostsfile"]
	if len(userKH) == 0 {
		userKH = []string{"~/.ssh/known_hosts", "~/.ssh/known_hosts2"}
	}
	for _, f := range userKH {
		if strings.EqualFold(f, "none") {
			continue
		}
		ep.KnownHostsFiles = append(ep.KnownHostsFiles, expandPath(f))
	}
	ep.userKnownHosts = len(ep.KnownHostsFiles)
	globalKH := cfg["globalknownhostsfile"]
	if len(globalKH) == 0 {
		globalKH = p.globalKnownHosts
	}
	for _, f := range globalKH {
		if !strings.EqualFold(f, "none") {
			ep.KnownHostsFiles = append(ep.KnownHostsFiles, expandPath(f))
		}
	}
	switch s := strings.ToLower(get("stricthostkeychecking")); s {
	case "", "ask", "yes", "true":
		ep.StrictHostKeyChecking = "yes"
	case "accept-new":
		ep.StrictHostKeyChecking = "accept-new"
	case "no", "off", "false":
		ep.StrictHostKeyChecking = "no"
	default:
		return nil, fmt.Errorf("ssh config for %s: StrictHostKeyChecking %q is not yes, accept-new, no or ask", alias, s)
	}
	if p.opts.AcceptNewHostKeys && ep.StrictHostKeyChecking == "yes" {
		ep.StrictHostKeyChecking = "accept-new"
	}

	jump := proxyJump
	if jump == "" {
		jump = get("proxyjump")
	}
	if jump == "" {
		if pc := get("proxycommand"); pc != "" && !strings.EqualFold(pc, "none") {
			pcLine := strings.Join(cfg["proxycommand"], " ")
			m := simpleProxyCommand.FindStringSubmatch(pcLine)
			if m == nil {
				return nil, fmt.Errorf("ssh config for %s: ProxyCommand %q is not supported; use ProxyJump", alias, pcLine)
			}
			jump = m[1]
		}
	}
	if jump != "" && !strings.EqualFold(jump, "none") {
		j, err := p.resolveJumps(strings.Split(jump, ","), depth+1)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", alias, err)
		}
		ep.Jump = j
	}
	return ep, nil
}

// resolveJumps resolves "a,b,c": c is reached through b through a, as ssh -J does (the listed
// chain overrides the hops' own ProxyJump, except for the first hop's).
func (p *Pool) resolveJumps(hops []string, depth int) (*Endpoint, error) {
	last := strings.TrimSpace(hops[len(hops)-1])
	user, host, port, err := parseJumpSpec(last)
	if err != nil {
		return nil, err
	}
	if len(hops) == 1 {
		return p.resolve(host, "", user, port, "", "", depth)
	}
	ep, err := p.resolve(host, "", user, port, "", "none", depth)
	if err != nil {
		return nil, err
	}
	ep.Jump, err = p.resolveJumps(hops[:len(hops)-1], depth+1)
	return ep, err
}

// parseJumpSpec parses [user@]host[:port] and ssh://[user@]host[:port].
func parseJumpSpec(s string) (user, host string, port int, err error) {
	if s == "" {
		return "", "", 0, fmt.Errorf("empty ProxyJump hop")
	}
	if strings.HasPrefix(s, "ssh://") {
		u, perr := url.Parse(s)
		if perr != nil {
			return "", "", 0, fmt.Errorf("ProxyJump %q: %v", s, perr)
		}
		if u.User != nil {
			user = u.User.Username()
		}
		host = u.Hostname()
		if ps := u.Port(); ps != "" {
			port, _ = strconv.Atoi(ps)
		}
		return user, host, port, nil
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		user, s = s[:i], s[i+1:]
	}
	host = s
	if h, ps, e := net.SplitHostPort(s); e == nil {
		n, cerr := strconv.Atoi(ps)
		if cerr != nil || n < 1 || n > 65535 {
			return "", "", 0, fmt.Errorf("ProxyJump hop %q: bad port", s)
		}
		host, port = h, n
	}
	if host == "" {
		return "", "", 0, fmt.Errorf("ProxyJump hop %q: empty host", s)
	}
	return user, host, port, nil
}

func appendUniq(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

func localHostName() string {
	h, _ := os.Hostname()
	if i := strings.IndexByte(h, '.'); i > 0 {
		h = h[:i]
	}
	return h
}
