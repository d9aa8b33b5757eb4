package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/drover/drover/provisioner/engine"
	"github.com/drover/drover/provisioner/health"
	"github.com/drover/drover/provisioner/inventory"
	"github.com/drover/drover/provisioner/plan"
	"github.com/drover/drover/provisioner/sshx"
)

// clusterRun is what every cluster command (provision, health, restart, status) starts from: the
// whole inventory resolved into a plan.Cluster, the --limit'ed hosts as engine hosts, and one SSH
// pool whose connections also carry the health checks.
type clusterRun struct {
	inv     *inventory.Inventory
	pool    *sshx.Pool
	cluster plan.Cluster
	nodes   map[string]plan.Node // by inventory name
	roles   map[string]string    // by inventory name
	hosts   []*engine.Host       // limited hosts that have a role, inventory order
	byName  map[string]*engine.Host
	byAddr  map[string]string // resolved address -> inventory name, for tunnelling
	stderr  io.Writer

	mu    sync.Mutex
	conns map[string]*sshx.Client
}

// loadCluster reads the inventory, resolves every coordinator and broker through ssh_config (the
// address peers and clients use defaults to the resolved HostName) and prepares engine hosts for
// the --limit'ed ones.
func loadCluster(hf *HostFlags, stderr io.Writer) (*clusterRun, error) {
	inv, limited, err := hf.Load()
	if err != nil {
		return nil, err
	}
	pool, err := hf.Pool(stderr)
	if err != nil {
		return nil, err
	}
	cr := &clusterRun{inv: inv, pool: pool, nodes: map[string]plan.Node{}, roles: map[string]string{},
		byName: map[string]*engine.Host{}, byAddr: map[string]string{}, conns: map[string]*sshx.Client{}, stderr: stderr}
	for _, h := range inv.Hosts {
		role := string(h.Role)
		if role != plan.RoleCoordinator && role != plan.RoleBroker {
			continue
		}
		ep, err := pool.Resolve(sshx.TargetFor(h))
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("%s: resolve ssh endpoint: %w", h.Name, err)
		}
		addr := ep.HostName
		if v, ok := h.Vars["cluster_address"]; ok && fmt.Sprint(v) != "" {
			addr = fmt.Sprint(v) // e.g. a private IP when ssh goes to a public name
		}
		n := plan.Node{Host: h.Name, ID: h.ID, Address: addr, Vars: h.Vars}
		cr.nodes[h.Name] = n
		cr.roles[h.Name] = role
		cr.byAddr[addr] = h.Name
		cr.byAddr[ep.HostName] = h.Name
		if role == plan.RoleCoordinator {
			cr.cluster.Coordinators = append(cr.cluster.Coordinators, n)
		} else {
			cr.cluster.Brokers = append(cr.cluster.Brokers, n)
		}
	}
	if len(cr.cluster.Coordinators) == 0 && len(cr.cluster.Brokers) == 0 {
		pool.Close()
		return nil, fmt.Errorf("%s: no coordinator or broker hosts (name groups zookeeper/kafka, or set drover_role)", inv.Path)
	}
	for _, h := range limited {
		if _, ok := cr.roles[h.Name]; !ok {
			fmt.Fprintf(stderr, "note: %s has no drover role; skipped\n", h.Name)
			continue
		}
		eh := &engine.Host{Name: h.Name, Data: h}
		cr.hosts = append(cr.hosts, eh)
		cr.byName[h.Name] = eh
	}
	return cr, nil
}

func (cr *clusterRun) close() {
	cr.pool.Close()
}

// connect dials one host through the pool (one connection per host per run, reused by every
// phase and every tunnelled health check).
func (cr *clusterRun) connect(ctx context.Context, name string) (*sshx.Client, error) {
	h := cr.inv.Host(name)
	if h == nil {
		return nil, fmt.Errorf("%s: not in the inventory", name)
	}
	c, err := cr.pool.Connect(ctx, sshx.TargetFor(h))
	if err != nil {
		return nil, err
	}
	cr.mu.Lock()
	cr.conns[name] = c
	cr.mu.Unlock()
	return c, nil
}

// engineDial is the engine's Connect phase: the pool's client is the engine's Conn; non-root
// users get sudo for privileged steps (drover always needs root on the node).
func (cr *clusterRun) engineDial(ctx context.Context, h *engine.Host) (engine.Conn, error) {
	c, err := cr.connect(ctx, h.Name)
	if err != nil {
		return nil, err
	}
	h.Sudo = c.User() != "root"
	return c, nil
}

// dialer reaches a service address through the SSH connection of the host that owns it, so health
// checks work when only port 22 is open. Addresses of unknown hosts go through any connected
// coordinator or broker host; --direct dials straight from the controller.
func (cr *clusterRun) dialer(direct bool) health.Dialer {
	if direct {
		var d net.Dialer
		return d.DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		name, ok := cr.byAddr[host]
		if !ok {
			name = cr.anyHost()
		}
		cr.mu.Lock()
		c := cr.conns[name]
		cr.mu.Unlock()
		if c == nil {
			if c, err = cr.connect(ctx, name); err != nil {
				return nil, fmt.Errorf("tunnel to %s through %s: %w", addr, name, err)
			}
		}
		conn, err := c.Forward(ctx, addr)
		if err != nil {
			return nil, fmt.Errorf("tunnel to %s through %s: %w", addr, name, err)
		}
		return conn, nil
	}
}

func (cr *clusterRun) anyHost() string {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	for n := range cr.conns {
		return n
	}
	for n := range cr.nodes {
		return n
	}
	return ""
}

// healthOptions lists every coordinator and broker of the inventory for the health checks.
func (cr *clusterRun) healthOptions(canary bool) (health.Options, error) {
	o := health.Options{Canary: canary}
	for _, n := range sortedNodes(cr.cluster.Coordinators) {
		o.Coordinators = append(o.Coordinators, health.Target{Host: n.Host, ID: n.ID, Addr: net.JoinHostPort(n.Address, strconv.Itoa(plan.ClientPort))})
	}
	for _, n := range sortedNodes(cr.cluster.Brokers) {
		adv, err := plan.AdvertisedListener(n)
		if err != nil {
			return o, err
		}
		_, hp, _ := cutScheme(adv)
		o.Brokers = append(o.Brokers, health.Target{Host: n.Host, ID: n.ID, Addr: hp})
	}
	return o, nil
}

// cutScheme splits the first listener of "PLAINTEXT://host:port,..." into name and host:port.
func cutScheme(listener string) (name, hostport string, ok bool) {
	first, _, _ := strings.Cut(listener, ",")
	name, hostport, ok = strings.Cut(first, "://")
	if !ok {
		return "", first, false
	}
	return name, hostport, true
}

func sortedNodes(ns []plan.Node) []plan.Node {
	out := append([]plan.Node(nil), ns...)
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// artifactPath finds a payload binary: --bin-dir, else next to the drover binary, else ./bin.
func artifactPath(binDir, name string) (string, error) {
	var dirs []string
	if binDir != "" {
		dirs = append(dirs, binDir)
	} else {
		if exe, err := os.Executable(); err == nil {
			dirs = append(dirs, filepath.Dir(exe))
		}
		dirs = append(dirs, "bin")
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("cannot find the %s binary in %v (build with `make build`, or pass --bin-dir)", name, dirs)
}
