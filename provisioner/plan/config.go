// Package plan renders what each node should hold: its service config files, environment and
// systemd unit, and the agent task list that converges the node to them.
package plan

import (
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Node is one inventory host as the renderers see it.
type Node struct {
	Host    string         // inventory name
	ID      int            // myid or broker.id
	Address string         // how peers and clients reach it: ssh HostName unless overridden
	Vars    map[string]any // merged inventory variables
}

// Cluster is the whole inventory's view needed to render any one node.
type Cluster struct {
	Coordinators []Node
	Brokers      []Node
}

// Fixed layout on every node. Data lives under /var/lib/drover and is never removed by drover.
const (
	EtcDir           = "/etc/drover"
	CoordinatorData  = "/var/lib/drover/coordinator"
	BrokerData       = "/var/lib/drover/broker"
	BrokerLogs       = "/var/lib/drover/broker/logs"
	ZooCfg           = "/etc/drover/zoo.cfg"
	ServerProperties = "/etc/drover/server.properties"
	CoordinatorEnv   = "/etc/drover/coordinator.env"
	BrokerEnv        = "/etc/drover/broker.env"
)

// Default ports, Kafka's and ZooKeeper's own so operators' muscle memory works.
const (
	ClientPort           = 2181
	PeerPort             = 2888
	ElectionPort         = 3888
	CoordinatorAdminPort = 7070
	KafkaPort            = 9092
	BrokerAdminPort      = 9644
)

func varString(vars map[string]any, key, def string) string {
	v, ok := vars[key]
	if !ok || v == nil {
		return def
	}
	return strings.TrimSpace(fmt.Sprint(v))
}

func varInt(vars map[string]any, key string, def int) (int, error) {
	v, ok := vars[key]
	if !ok || v == nil {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(fmt.Sprint(v)))
	if err != nil {
		return 0, fmt.Errorf("variable %s=%v: not an integer", key, v)
	}
	return n, nil
}

// overrides returns a dict variable (e.g. broker_properties: {log.retention.hours: 24}) as sorted
// key=value lines appended after drover's own keys, so users can set any service key.
func overrides(vars map[string]any, key string) ([]string, error) {
	v, ok := vars[key]
	if !ok || v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("variable %s: want a mapping of config keys to values, got %T", key, v)
	}
	var lines []string
	for k, val := range m {
		if strings.ContainsAny(k, "=\n") || strings.ContainsAny(fmt.Sprint(val), "\n") {
			return nil, fmt.Errorf("variable %s: key %q or its value contains '=' or a newline", key, k)
		}
		lines = append(lines, k+"="+fmt.Sprint(val))
	}
	sort.Strings(lines)
	return lines, nil
}

// CoordinatorConfig renders zoo.cfg for one coordinator: every coordinator of the inventory in
// server.N lines, so the file is identical in shape on all members.
func CoordinatorConfig(c Cluster, self Node) (string, error) {
	if len(c.Coordinators) == 0 {
		return "", fmt.Errorf("no coordinator hosts in the inventory")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Rendered by drover for %s (myid %d); edits are overwritten on the next provision.\n", self.Host, self.ID)
	tick, err := varInt(self.Vars, "tick_time", 2000)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&b, "tickTime=%d\ninitLimit=10\nsyncLimit=5\n", tick)
	fmt.Fprintf(&b, "dataDir=%s\nclientPort=%d\nadmin.serverPort=%d\n", CoordinatorData, ClientPort, CoordinatorAdminPort)
	fmt.Fprintf(&b, "autopurge.purgeInterval=1\n")
	nodes := append([]Node(nil), c.Coordinators...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	for _, n := range nodes {
		fmt.Fprintf(&b, "server.%d=%s:%d:%d\n", n.ID, n.Address, PeerPort, ElectionPort)
	}
	extra, err := overrides(self.Vars, "coordinator_config")
	if err != nil {
		return "", err
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	return b.String(), nil
}

// ConnectString is the coordinator connect string brokers use, in inventory id order.
func ConnectString(c Cluster) string {
	nodes := append([]Node(nil), c.Coordinators...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].ID < nodes[j].ID })
	var parts []string
	for _, n := range nodes {
		parts = append(parts, net.JoinHostPort(n.Address, strconv.Itoa(ClientPort)))
	}
	return strings.Join(parts, ",")
}

var hostRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

// AdvertisedListener returns the broker's advertised listener: the `advertised_listeners` (or
// `advertised_host`) variable when set, e.g. an EC2 public DNS name, else the address drover itself
// reaches the host on. The value must look reachable: a real host name or IP, and a port.
func AdvertisedListener(self Node) (string, error) {
	port, err := varInt(self.Vars, "kafka_port", KafkaPort)
	if err != nil {
		return "", err
	}
	v := varString(self.Vars, "advertised_listeners", "")
	if v == "" {
		h := varString(self.Vars, "advertised_host", self.Address)
		v = "PLAINTEXT://" + net.JoinHostPort(h, strconv.Itoa(port))
	}
	for _, l := range strings.Split(v, ",") {
		if err := checkListener(strings.TrimSpace(l)); err != nil {
			return "", fmt.Errorf("%s: advertised listener %q: %w", self.Host, l, err)
		}
	}
	return v, nil
}

func checkListener(l string) error {
	name, hp, ok := strings.Cut(l, "://")
	if !ok || name == "" {
		return fmt.Errorf("want NAME://host:port, e.g. PLAINTEXT://ec2-3-1-2-3.compute.amazonaws.com:9092")
	}
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("want host:port: %v", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("port %q out of range", port)
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return fmt.Errorf("%s is a bind-all address; clients cannot connect to it", host)
		}
		return nil
	}
	if host == "" || !hostRE.MatchString(host) || len(host) > 253 {
		return fmt.Errorf("%q is not a valid host name", host)
	}
	return nil
}

// BrokerConfig renders server.properties for one broker.
func BrokerConfig(c Cluster, self Node) (string, error) {
	if len(c.Coordinators) == 0 {
		return "", fmt.Errorf("brokers need coordinator hosts in the inventory")
	}
	adv, err := AdvertisedListener(self)
	if err != nil {
		return "", err
	}
	port, _ := varInt(self.Vars, "kafka_port", KafkaPort)
	n := len(c.Brokers)
	rf, err := varInt(self.Vars, "default_replication_factor", min(3, n))
	if err != nil {
		return "", err
	}
	if rf < 1 || rf > n {
		return "", fmt.Errorf("%s: default_replication_factor %d: want 1..%d (the number of brokers)", self.Host, rf, n)
	}
	isr, err := varInt(self.Vars, "min_insync_replicas", max(1, min(2, rf-1)))
	if err != nil {
		return "", err
	}
	if isr < 1 || isr > rf {
		return "", fmt.Errorf("%s: min_insync_replicas %d: want 1..%d (the replication factor)", self.Host, isr, rf)
	}
	parts, err := varInt(self.Vars, "num_partitions", 3)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Rendered by drover for %s; edits are overwritten on the next provision.\n", self.Host)
	fmt.Fprintf(&b, "broker.id=%d\n", self.ID)
	fmt.Fprintf(&b, "listeners=PLAINTEXT://0.0.0.0:%d\n", port)
	fmt.Fprintf(&b, "advertised.listeners=%s\n", adv)
	fmt.Fprintf(&b, "log.dirs=%s\n", BrokerLogs)
	fmt.Fprintf(&b, "coordinator.connect=%s\n", ConnectString(c))
	fmt.Fprintf(&b, "admin.listener=0.0.0.0:%d\n", BrokerAdminPort)
	fmt.Fprintf(&b, "num.partitions=%d\n", parts)
	fmt.Fprintf(&b, "default.replication.factor=%d\n", rf)
	fmt.Fprintf(&b, "min.insync.replicas=%d\n", isr)
	extra, err := overrides(self.Vars, "broker_properties")
	if err != nil {
		return "", err
	}
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	return b.String(), nil
}

// Environment renders a service's EnvironmentFile: the heap as GOMEMLIMIT.
func Environment(self Node) (string, *Heap, error) {
	raw := varString(self.Vars, "heap", "")
	if raw == "" {
		return "# Rendered by drover. No heap set in the inventory: the Go runtime default applies.\n", nil, nil
	}
	h, err := ParseHeap(raw)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", self.Host, err)
	}
	return fmt.Sprintf("# Rendered by drover from heap: %s\nGOMEMLIMIT=%s\n", raw, h.GoMemLimit()), &h, nil
}
