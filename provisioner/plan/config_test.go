package plan

import (
	"strings"
	"testing"
)

func testCluster() Cluster {
	c := Cluster{}
	for i := 1; i <= 3; i++ {
		c.Coordinators = append(c.Coordinators, Node{Host: "zk" + string(rune('0'+i)), ID: i, Address: "10.0.0." + string(rune('0'+i)), Vars: map[string]any{}})
		c.Brokers = append(c.Brokers, Node{Host: "kafka" + string(rune('0'+i)), ID: i, Address: "10.0.1." + string(rune('0'+i)), Vars: map[string]any{}})
	}
	return c
}

func TestCoordinatorConfigListsEveryMember(t *testing.T) {
	c := testCluster()
	got, err := CoordinatorConfig(c, c.Coordinators[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server.1=10.0.0.1:2888:3888\nserver.2=10.0.0.2:2888:3888\nserver.3=10.0.0.3:2888:3888\n", "dataDir=/var/lib/drover/coordinator\n", "clientPort=2181\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("zoo.cfg lacks %q:\n%s", want, got)
		}
	}
}

func TestBrokerConfigDefaultsFitTheBrokerCount(t *testing.T) {
	c := testCluster()
	got, err := BrokerConfig(c, c.Brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"broker.id=1\n", "advertised.listeners=PLAINTEXT://10.0.1.1:9092\n",
		"coordinator.connect=10.0.0.1:2181,10.0.0.2:2181,10.0.0.3:2181\n", "default.replication.factor=3\n", "min.insync.replicas=2\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("server.properties lacks %q:\n%s", want, got)
		}
	}
	c.Brokers = c.Brokers[:1]
	got, _ = BrokerConfig(c, c.Brokers[0])
	if !strings.Contains(got, "default.replication.factor=1\n") || !strings.Contains(got, "min.insync.replicas=1\n") {
		t.Errorf("one broker must get RF 1 / ISR 1:\n%s", got)
	}
}

func TestAdvertisedListenerOverrideAndValidation(t *testing.T) {
	n := Node{Host: "kafka1", Address: "10.0.0.1", Vars: map[string]any{"advertised_host": "ec2-3-1-2-3.compute-1.amazonaws.com"}}
	if got, err := AdvertisedListener(n); err != nil || got != "PLAINTEXT://ec2-3-1-2-3.compute-1.amazonaws.com:9092" {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"PLAINTEXT://0.0.0.0:9092", "10.0.0.1:9092", "PLAINTEXT://host:99999", "PLAINTEXT://bad host:9092", "PLAINTEXT://:9092"} {
		n.Vars = map[string]any{"advertised_listeners": bad}
		if _, err := AdvertisedListener(n); err == nil {
			t.Errorf("advertised_listeners=%q accepted", bad)
		}
	}
}

func TestOverridesAndEnvironment(t *testing.T) {
	c := testCluster()
	c.Brokers[0].Vars = map[string]any{"broker_properties": map[string]any{"log.retention.hours": 24}, "heap": "1g"}
	got, err := BrokerConfig(c, c.Brokers[0])
	if err != nil || !strings.Contains(got, "log.retention.hours=24\n") {
		t.Fatalf("override missing: %v\n%s", err, got)
	}
	env, h, err := Environment(c.Brokers[0])
	if err != nil || h == nil || !strings.Contains(env, "GOMEMLIMIT=1024MiB\n") {
		t.Fatalf("env %q %v", env, err)
	}
	c.Brokers[0].Vars["heap"] = "huge"
	if _, _, err := Environment(c.Brokers[0]); err == nil || !strings.Contains(err.Error(), "kafka1") {
		t.Fatalf("bad heap must name the host: %v", err)
	}
}
