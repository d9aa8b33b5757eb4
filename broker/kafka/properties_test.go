package kafka

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReplicationProperties(t *testing.T) {
	p := filepath.Join(t.TempDir(), "server.properties")
	os.WriteFile(p, []byte(`broker.id=2
listeners=PLAINTEXT://127.0.0.1:9092
zookeeper.connect=a:2181,b:2181
default.replication.factor=3
min.insync.replicas=2
replica.lag.time.max.ms=5000
unclean.leader.election.enable=true
auto.leader.rebalance.enable=false
leader.imbalance.check.interval.seconds=30
controlled.shutdown.enable=true
controlled.shutdown.timeout.ms=20000
zookeeper.session.timeout.ms=6000
controlled.shutdown.max.retries=3
`), 0o644)
	props, err := ParseProperties(p)
	if err != nil {
		t.Fatal(err)
	}
	c := props.Config
	if c.ReplicaLagTimeMax != 5*time.Second || !c.UncleanLeaderElection || *c.AutoLeaderRebalance ||
		c.LeaderImbalanceCheckInterval != 30*time.Second || !*c.ControlledShutdown ||
		c.ControlledShutdownTimeout != 20*time.Second || props.SessionTimeout != 6*time.Second ||
		c.DefaultReplicationFactor != 3 || c.MinInsyncReplicas != 2 {
		t.Fatalf("parsed %+v session %v", c, props.SessionTimeout)
	}
	if len(props.Warnings) != 0 {
		t.Fatalf("warnings: %v", props.Warnings)
	}
	os.WriteFile(p, []byte("broker.session.timeout.ms=10\n"), 0o644)
	if _, err := ParseProperties(p); err == nil {
		t.Fatal("a 10 ms session timeout was accepted")
	}
}
