package coordinator

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/server/v3/storage/mvcc"
)

// ZooKeeperVersion is the ZooKeeper release whose four-letter-word formats drover reproduces;
// tools that parse the version see a plausible one, with drover's own after the dash.
const ZooKeeperVersion = "3.8.4"

// notServing is ZooKeeper's answer while it has no quorum.
const notServing = "This ZooKeeper instance is not currently serving requests\n"

// implemented are the words drover answers; knownWords are the rest of ZooKeeper's, answered
// with ZooKeeper's "not in the whitelist" text so tools get a reply instead of a hang.
var (
	implemented = []string{"ruok", "srvr", "stat", "mntr", "isro", "conf"}
	knownWords  = []string{"cons", "crst", "dump", "envi", "srst", "wchs", "wchc", "wchp", "dirs", "gtmk", "stmk", "hash"}
)

func isFourLetterWord(w string) bool {
	return slices.Contains(implemented, w) || slices.Contains(knownWords, w)
}

func (m *Member) allowed(w string) bool {
	if !slices.Contains(implemented, w) {
		return false
	}
	return slices.Contains(m.cfg.FourLetterWords, "*") || slices.Contains(m.cfg.FourLetterWords, w)
}

// answer builds the reply to a four-letter word.
func (m *Member) answer(w string, c net.Conn) string {
	if !m.allowed(w) {
		return w + " is not executed because it is not in the whitelist.\n"
	}
	switch w {
	case "ruok":
		return "imok"
	case "isro":
		return "rw"
	case "conf":
		return m.conf()
	}
	serving, _ := m.Serving()
	if !serving {
		return notServing
	}
	st := m.Stats()
	switch w {
	case "mntr":
		return st.Mntr()
	case "stat":
		var b strings.Builder
		b.WriteString("Zookeeper version: " + st.Version + "\n")
		b.WriteString("Clients:\n")
		b.WriteString(m.clientLines(c))
		b.WriteString("\n")
		b.WriteString(st.srvrBody())
		return b.String()
	default: // srvr
		return "Zookeeper version: " + st.Version + "\n" + st.srvrBody()
	}
}

// Stats is the member state the four-letter words and metrics report.
type Stats struct {
	Version         string
	Mode            string // leader, follower, standalone
	Zxid            uint64 // raft applied index
	NodeCount       int64
	Ephemerals      int64
	DataSize        int64
	Connections     int64
	Received, Sent  int64
	QuorumSize      int
	Followers       int // voting members other than the leader (leader only)
	SyncedFollowers int // followers with a live raft stream to this leader (leader only)
	Uptime          time.Duration
	OpenFDs, MaxFDs int64
}

// Stats reads the member's current state from etcd.
func (m *Member) Stats() Stats {
	s := m.etcd.Server
	voting := m.votingMembers()
	st := Stats{
		Version:     m.fullVersion(),
		Zxid:        s.AppliedIndex(),
		Received:    m.received.Load(),
		Sent:        m.sent.Load(),
		QuorumSize:  voting,
		Uptime:      time.Since(m.started),
		OpenFDs:     openFDs(),
		MaxFDs:      maxFDs(),
		Connections: m.connCount(),
	}
	switch {
	case len(s.Cluster().Members()) == 1:
		st.Mode = "standalone"
	case m.IsLeader():
		st.Mode = "leader"
		st.Followers = voting - 1
		st.SyncedFollowers = m.activePeers()
	default:
		st.Mode = "follower"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// A full scan is fine at coordinator sizes (thousands of keys) and is the only way to count
	// lease-bound ("ephemeral") keys without reaching into the lessor.
	// An empty, non-nil end means every key from the start key on.
	if r, err := s.KV().Range(ctx, []byte{0}, []byte{}, mvcc.RangeOptions{}); err == nil {
		st.NodeCount = int64(len(r.KVs))
		for _, kv := range r.KVs {
			if kv.Lease != 0 {
				st.Ephemerals++
			}
			st.DataSize += int64(len(kv.Key) + len(kv.Value))
		}
	}
	return st
}

func (m *Member) connCount() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.conns))
}

// activePeers counts peers with an open raft stream to this member, from etcd's own
// etcd_network_active_peers gauge (the transport keeps no exported state for it).
func (m *Member) activePeers() int {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return 0
	}
	local := m.etcd.Server.MemberID().String()
	n := 0
	for _, mf := range mfs {
		if mf.GetName() != "etcd_network_active_peers" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			isLocal := false
			for _, l := range mt.GetLabel() {
				if l.GetName() == "Local" && l.GetValue() == local {
					isLocal = true
				}
			}
			if isLocal && mt.GetGauge().GetValue() > 0 {
				n++
			}
		}
	}
	return n
}

func (st Stats) srvrBody() string {
	var b strings.Builder
	// drover does not sample request latency; zeros keep the line parseable.
	b.WriteString("Latency min/avg/max: 0/0.0/0\n")
	fmt.Fprintf(&b, "Received: %d\n", st.Received)
	fmt.Fprintf(&b, "Sent: %d\n", st.Sent)
	fmt.Fprintf(&b, "Connections: %d\n", st.Connections)
	b.WriteString("Outstanding: 0\n")
	fmt.Fprintf(&b, "Zxid: 0x%x\n", st.Zxid)
	fmt.Fprintf(&b, "Mode: %s\n", st.Mode)
	fmt.Fprintf(&b, "Node count: %d\n", st.NodeCount)
	if st.Mode == "leader" {
		b.WriteString("Proposal sizes last/min/max: -1/-1/-1\n")
	}
	return b.String()
}

// Mntr renders the mntr answer: "zk_key\tvalue" lines in ZooKeeper 3.8's order.
func (st Stats) Mntr() string {
	var b strings.Builder
	kv := func(k string, v any) { fmt.Fprintf(&b, "zk_%s\t%v\n", k, v) }
	kv("version", st.Version)
	kv("server_state", st.Mode)
	kv("avg_latency", "0.0")
	kv("max_latency", 0)
	kv("min_latency", 0)
	kv("packets_received", st.Received)
	kv("packets_sent", st.Sent)
	kv("num_alive_connections", st.Connections)
	kv("outstanding_requests", 0)
	kv("znode_count", st.NodeCount)
	kv("watch_count", 0)
	kv("ephemerals_count", st.Ephemerals)
	kv("approximate_data_size", st.DataSize)
	kv("open_file_descriptor_count", st.OpenFDs)
	kv("max_file_descriptor_count", st.MaxFDs)
	kv("uptime", st.Uptime.Milliseconds())
	kv("quorum_size", st.QuorumSize)
	switch st.Mode {
	case "leader":
		kv("peer_state", "leading - broadcast")
		kv("learners", st.Followers)
		kv("synced_followers", st.SyncedFollowers)
		kv("synced_non_voting_followers", 0)
		kv("synced_observers", 0)
		kv("pending_syncs", 0)
	case "follower":
		kv("peer_state", "following - broadcast")
	}
	return b.String()
}

func (m *Member) clientLines(self net.Conn) string {
	var b strings.Builder
	fmt.Fprintf(&b, " /%s[0](queued=0,recved=1,sent=0)\n", self.RemoteAddr())
	m.mu.Lock()
	defer m.mu.Unlock()
	for c := range m.conns {
		fmt.Fprintf(&b, " /%s[1](queued=0,recved=%d,sent=%d)\n", c.client.RemoteAddr(), c.recv.Load(), c.sent.Load())
	}
	return b.String()
}

func (m *Member) conf() string {
	c := m.cfg
	var b strings.Builder
	fmt.Fprintf(&b, "clientPort=%s\n", portOf(m.ClientAddr()))
	fmt.Fprintf(&b, "dataDir=%s\n", c.DataDir)
	fmt.Fprintf(&b, "dataLogDir=%s\n", c.DataLogDir)
	fmt.Fprintf(&b, "tickTime=%d\n", c.TickTime.Milliseconds())
	fmt.Fprintf(&b, "initLimit=%d\n", c.InitLimit)
	fmt.Fprintf(&b, "syncLimit=%d\n", c.SyncLimit)
	fmt.Fprintf(&b, "serverId=%d\n", c.MyID)
	for _, s := range c.Servers {
		fmt.Fprintf(&b, "server.%d=%s:%d:%d:participant\n", s.ID, s.Host, s.PeerPort, s.ElectionPort)
	}
	hb, el := c.Timing()
	fmt.Fprintf(&b, "drover.heartbeatMs=%d\n", hb.Milliseconds())
	fmt.Fprintf(&b, "drover.electionMs=%d\n", el.Milliseconds())
	fmt.Fprintf(&b, "drover.clusterToken=%s\n", c.Token())
	return b.String()
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// fullVersion mimics ZooKeeper's "3.8.4-<id>, built on <date> UTC".
func (m *Member) fullVersion() string {
	built := "1970-01-01 00:00 UTC"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
					built = t.UTC().Format("2006-01-02 15:04") + " UTC"
				}
			}
		}
	}
	return ZooKeeperVersion + "-drover-" + m.version + ", built on " + built
}

func openFDs() int64 {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return int64(len(ents))
}

func maxFDs() int64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int64(rl.Cur)
}
