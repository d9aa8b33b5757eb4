package kafka

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/broker/cluster"
)

// Properties is a parsed server.properties file.
type Properties struct {
	Config Config
	// CoordinatorEndpoints from coordinator.connect (or zookeeper.connect); empty = single node.
	CoordinatorEndpoints []string
	// AdminListen serves /healthz and /metrics; "" disables it.
	AdminListen string
	// SessionTimeout is broker.session.timeout.ms (zookeeper.session.timeout.ms
	// accepted too): the registration lease TTL; 0 = cluster.DefaultRegistrationTTL.
	SessionTimeout time.Duration
	Warnings       []string
}

// DefaultAdminListen is admin.listener's default.
const DefaultAdminListen = "0.0.0.0:9644"

// knownIgnored are Kafka keys that are accepted quietly because they are
// about things drover does differently (JVM, threads, ZooKeeper timeouts).
var knownIgnored = map[string]bool{
	"num.network.threads": true, "num.io.threads": true, "socket.send.buffer.bytes": true,
	"socket.receive.buffer.bytes": true, "num.recovery.threads.per.data.dir": true,
	"offsets.topic.replication.factor": true, "transaction.state.log.replication.factor": true,
	"transaction.state.log.min.isr": true, "zookeeper.connection.timeout.ms": true,
	"listener.security.protocol.map": true, "controlled.shutdown.max.retries": true,
	"controlled.shutdown.retry.backoff.ms": true, "leader.imbalance.per.broker.percentage": true,
	"offsets.topic.num.partitions": true, "replica.fetch.max.bytes": true, "num.replica.fetchers": true,
	"inter.broker.listener.name": true, "log.flush.interval.messages": true, "log.flush.interval.ms": true,
}

// ParseProperties reads a server.properties-syntax file. Unknown keys
// become warnings; malformed lines and bad values are errors naming file:line.
func ParseProperties(path string) (*Properties, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	p := &Properties{AdminListen: DefaultAdminListen}
	c := &p.Config
	c.Listen = ":9092"
	c.LogDir = "/tmp/kafka-logs"
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lineNo := 0
	var retention struct {
		ms, minutes, hours int64
		set                int
	}
	var roll struct{ ms, hours int64 }
	var pending string
	pendingLine := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line = pending + line
		} else {
			pendingLine = lineNo
		}
		if strings.HasSuffix(line, `\`) && !strings.HasSuffix(line, `\\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		pending = ""
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("%s:%d: malformed line %q (want key=value)", path, pendingLine, line)
		}
		key := strings.TrimSpace(line[:i])
		val := strings.TrimSpace(line[i+1:])
		bad := func(err error) error {
			return fmt.Errorf("%s:%d: %s: %v", path, pendingLine, key, err)
		}
		num := func() (int64, error) { return strconv.ParseInt(val, 10, 64) }
		var err error
		var n int64
		switch key {
		case "broker.id", "node.id":
			if n, err = num(); err == nil && (n < 0 || n > 1<<31-1) {
				err = fmt.Errorf("must be 0..2147483647")
			}
			c.BrokerID = int32(n)
		case "listeners":
			c.Listen, err = pickListener(val)
		case "advertised.listeners", "advertised.listener":
			c.Advertised, err = pickListener(val)
		case "log.dirs", "log.dir":
			dirs := strings.Split(val, ",")
			c.LogDir = strings.TrimSpace(dirs[0])
			if len(dirs) > 1 {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s:%d: %s lists %d directories; only %s is used", path, pendingLine, key, len(dirs), c.LogDir))
			}
		case "coordinator.connect", "zookeeper.connect":
			eps, chroot := cluster.ParseConnect(val)
			if len(eps) == 0 {
				err = fmt.Errorf("no endpoints")
			}
			p.CoordinatorEndpoints = eps
			if chroot != "" {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s:%d: chroot %q in %s is ignored (drover namespaces its keys itself)", path, pendingLine, chroot, key))
			}
		case "broker.rack":
			c.Rack = val
		case "num.partitions":
			n, err = num()
			if err == nil && n < 1 {
				err = fmt.Errorf("must be >= 1")
			}
			c.NumPartitions = int32(n)
		case "default.replication.factor":
			n, err = num()
			if err == nil && n < 1 {
				err = fmt.Errorf("must be >= 1")
			}
			c.DefaultReplicationFactor = int16(n)
		case "min.insync.replicas":
			n, err = num()
			c.MinInsyncReplicas = int(n)
		case "auto.create.topics.enable":
			var b bool
			b, err = strconv.ParseBool(val)
			c.AutoCreateTopics = &b
		case "log.retention.ms":
			retention.ms, err = num()
			retention.set |= 4
		case "log.retention.minutes":
			retention.minutes, err = num()
			retention.set |= 2
		case "log.retention.hours":
			retention.hours, err = num()
			retention.set |= 1
		case "log.retention.bytes":
			c.LogRetentionBytes, err = num()
		case "log.segment.bytes":
			c.LogSegmentBytes, err = num()
		case "log.roll.ms":
			roll.ms, err = num()
		case "log.roll.hours":
			roll.hours, err = num()
		case "log.retention.check.interval.ms":
			n, err = num()
			c.LogRetentionCheck = time.Duration(n) * time.Millisecond
		case "message.max.bytes":
			n, err = num()
			c.MessageMaxBytes = int32(n)
		case "socket.request.max.bytes":
			n, err = num()
			c.MaxRequestBytes = int32(n)
		case "group.initial.rebalance.delay.ms":
			n, err = num()
			d := time.Duration(n) * time.Millisecond
			c.GroupInitialRebalanceDelay = &d
		case "group.min.session.timeout.ms":
			n, err = num()
			c.GroupMinSessionTimeout = time.Duration(n) * time.Millisecond
		case "group.max.session.timeout.ms":
			n, err = num()
			c.GroupMaxSessionTimeout = time.Duration(n) * time.Millisecond
		case "replica.lag.time.max.ms":
			n, err = num()
			if err == nil && n <= 0 {
				err = fmt.Errorf("must be > 0")
			}
			c.ReplicaLagTimeMax = time.Duration(n) * time.Millisecond
		case "unclean.leader.election.enable":
			c.UncleanLeaderElection, err = strconv.ParseBool(val)
		case "auto.leader.rebalance.enable":
			var b bool
			b, err = strconv.ParseBool(val)
			c.AutoLeaderRebalance = &b
		case "leader.imbalance.check.interval.seconds":
			n, err = num()
			if err == nil && n <= 0 {
				err = fmt.Errorf("must be > 0")
			}
			c.LeaderImbalanceCheckInterval = time.Duration(n) * time.Second
		case "controlled.shutdown.enable":
			var b bool
			b, err = strconv.ParseBool(val)
			c.ControlledShutdown = &b
		case "controlled.shutdown.timeout.ms":
			n, err = num()
			if err == nil && n <= 0 {
				err = fmt.Errorf("must be > 0")
			}
			c.ControlledShutdownTimeout = time.Duration(n) * time.Millisecond
		case "broker.session.timeout.ms", "zookeeper.session.timeout.ms":
			n, err = num()
			if err == nil && n < 1000 {
				err = fmt.Errorf("must be >= 1000")
			}
			p.SessionTimeout = time.Duration(n) * time.Millisecond
		case "admin.listener":
			p.AdminListen = val
			if val == "none" {
				p.AdminListen = ""
			}
		default:
			if !knownIgnored[key] {
				p.Warnings = append(p.Warnings, fmt.Sprintf("%s:%d: unknown key %s ignored", path, pendingLine, key))
			}
		}
		if err != nil {
			return nil, bad(err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	switch {
	case retention.set&4 != 0:
		c.LogRetentionMs = retention.ms
	case retention.set&2 != 0:
		c.LogRetentionMs = retention.minutes * 60000
	case retention.set&1 != 0:
		c.LogRetentionMs = retention.hours * 3600000
	}
	if c.LogRetentionMs < 0 {
		c.LogRetentionMs = -1
	}
	if roll.ms > 0 {
		c.LogSegmentMs = roll.ms
	} else if roll.hours > 0 {
		c.LogSegmentMs = roll.hours * 3600000
	}
	return p, nil
}

// pickListener takes the PLAINTEXT listener of a listeners value.
func pickListener(v string) (string, error) {
	for _, l := range strings.Split(v, ",") {
		l = strings.TrimSpace(l)
		name, addr, ok := strings.Cut(l, "://")
		if !ok {
			return "", fmt.Errorf("listener %q: want NAME://host:port", l)
		}
		if name != "PLAINTEXT" {
			continue
		}
		if _, _, err := splitHostPortLoose(addr); err != nil {
			return "", err
		}
		return addr, nil
	}
	return "", fmt.Errorf("no PLAINTEXT listener in %q (only PLAINTEXT is supported)", v)
}

func splitHostPortLoose(addr string) (string, int, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("listener address %q: missing port", addr)
	}
	port, err := strconv.Atoi(addr[i+1:])
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("listener address %q: bad port", addr)
	}
	return strings.Trim(addr[:i], "[]"), port, nil
}
