package kafka

// Compatibility with IBM/sarama, run at several Config.Version levels: the
// Kafka version a sarama user configures decides which request versions it
// sends (clamped to what we advertise since sarama 1.46). 0.11 is the
// oldest level that speaks record batches (Produce v3, Fetch v5); older
// levels use message sets, which drover refuses (Produce v0-2).

import (
	"context"
	"fmt"
	"log"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

type saramaVer struct {
	name string
	v    sarama.KafkaVersion
	// raw turns off ApiVersions negotiation: sarama before 1.46 sent
	// exactly the request versions its Config.Version implies.
	raw bool
}

var saramaVersions = []saramaVer{
	{name: "0.11", v: sarama.V0_11_0_0},
	{name: "2.1", v: sarama.V2_1_0_0},
	{name: "default-" + sarama.DefaultVersion.String(), v: sarama.DefaultVersion},
	{name: "3.6", v: sarama.V3_6_0_0},
	{name: "max-" + sarama.MaxVersion.String(), v: sarama.MaxVersion},
	{name: "2.1-raw", v: sarama.V2_1_0_0, raw: true},
	{name: "2.8-raw", v: sarama.V2_8_0_0, raw: true},
	{name: "3.6-raw", v: sarama.V3_6_0_0, raw: true},
}

func init() {
	if os.Getenv("DROVER_TEST_CLIENT_LOG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Lmicroseconds)
	}
}

func saramaConfig(ver saramaVer) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = ver.v
	c.ApiVersionsRequest = !ver.raw
	c.ClientID = "drover-compat"
	c.Metadata.Retry.Backoff = 50 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.Retry.Backoff = 50 * time.Millisecond
	c.Consumer.Return.Errors = true
	c.Consumer.Retry.Backoff = 50 * time.Millisecond
	c.Consumer.MaxWaitTime = 100 * time.Millisecond
	c.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
	c.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	return c
}

func saramaClient(t *testing.T, s *Server, c *sarama.Config) sarama.Client {
	t.Helper()
	cl, err := sarama.NewClient([]string{s.Addr()}, c)
	if err != nil {
		t.Fatalf("sarama client: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// consumeAll reads n messages from every partition of topic starting at
// offset (sarama.OffsetOldest/Newest) and returns them by value.
func saramaConsumeN(t *testing.T, cl sarama.Client, topic string, n int, start int64) []*sarama.ConsumerMessage {
	t.Helper()
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	parts, err := cons.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *sarama.ConsumerMessage, n+16)
	errc := make(chan error, 16)
	for _, p := range parts {
		pc, err := cons.ConsumePartition(topic, p, start)
		if err != nil {
			t.Fatalf("consume partition %d: %v", p, err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				ch <- m
			}
		}()
		go func() {
			for e := range pc.Errors() {
				errc <- e
			}
		}()
	}
	var out []*sarama.ConsumerMessage
	deadline := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case m := <-ch:
			out = append(out, m)
		case e := <-errc:
			t.Fatalf("consumer error: %v", e)
		case <-deadline:
			t.Fatalf("consumed %d of %d messages", len(out), n)
		}
	}
	return out
}

func TestSaramaProduceConsume(t *testing.T) {
	for _, ver := range saramaVersions {
		t.Run(ver.name, func(t *testing.T) {
			s := startServer(t, t.TempDir())
			codecs := []sarama.CompressionCodec{sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy, sarama.CompressionLZ4}
			if ver.v.IsAtLeast(sarama.V2_1_0_0) {
				codecs = append(codecs, sarama.CompressionZSTD)
			}
			for _, codec := range codecs {
				for _, acks := range []sarama.RequiredAcks{sarama.WaitForLocal, sarama.WaitForAll} {
					topic := fmt.Sprintf("sync-%s-%d", codec, acks)
					c := saramaConfig(ver)
					c.Producer.Compression = codec
					c.Producer.RequiredAcks = acks
					cl := saramaClient(t, s, c)
					p, err := sarama.NewSyncProducerFromClient(cl)
					if err != nil {
						t.Fatal(err)
					}
					const n = 30
					var msgs []*sarama.ProducerMessage
					for i := 0; i < n; i++ {
						msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint("k", i)),
							Value:   sarama.StringEncoder(fmt.Sprint("v", i)),
							Headers: []sarama.RecordHeader{{Key: []byte("h"), Value: []byte(fmt.Sprint(i))}}})
					}
					// One at a time, then a batch.
					part, off, err := p.SendMessage(msgs[0])
					if err != nil {
						t.Fatalf("%s acks=%d: send: %v", codec, acks, err)
					}
					if off != 0 {
						t.Fatalf("first offset on partition %d = %d", part, off)
					}
					if err := p.SendMessages(msgs[1:]); err != nil {
						t.Fatalf("%s acks=%d: send batch: %v", codec, acks, err)
					}
					p.Close()
					got := saramaConsumeN(t, cl, topic, n, sarama.OffsetOldest)
					seen := map[string]bool{}
					for _, m := range got {
						k, v := string(m.Key), string(m.Value)
						if "k"+v[1:] != k {
							t.Fatalf("key %q value %q", k, v)
						}
						if len(m.Headers) != 1 || string(m.Headers[0].Key) != "h" || string(m.Headers[0].Value) != v[1:] {
							t.Fatalf("headers of %q: %+v", v, m.Headers)
						}
						if m.Timestamp.IsZero() || time.Since(m.Timestamp) > time.Minute {
							t.Fatalf("timestamp %v", m.Timestamp)
						}
						seen[v] = true
					}
					if len(seen) != n {
						t.Fatalf("%s: %d distinct of %d", codec, len(seen), n)
					}
				}
			}
		})
	}
}

func TestSaramaAsyncAndIdempotent(t *testing.T) {
	for _, ver := range saramaVersions {
		t.Run(ver.name, func(t *testing.T) {
			s := startServer(t, t.TempDir())
			for _, idem := range []bool{false, true} {
				topic := fmt.Sprintf("async-idem-%v", idem)
				c := saramaConfig(ver)
				c.Producer.Return.Errors = true
				c.Producer.Flush.Messages = 10
				c.Producer.Flush.Frequency = 5 * time.Millisecond
				if idem {
					c.Producer.Idempotent = true
					c.Producer.RequiredAcks = sarama.WaitForAll
					c.Net.MaxOpenRequests = 1
				}
				cl := saramaClient(t, s, c)
				ap, err := sarama.NewAsyncProducerFromClient(cl)
				if err != nil {
					t.Fatal(err)
				}
				const n = 500
				go func() {
					for i := 0; i < n; i++ {
						ap.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprint(i))}
					}
				}()
				offsets := map[int32][]int64{}
				for i := 0; i < n; i++ {
					select {
					case m := <-ap.Successes():
						offsets[m.Partition] = append(offsets[m.Partition], m.Offset)
					case e := <-ap.Errors():
						t.Fatalf("idempotent=%v: %v", idem, e)
					case <-time.After(20 * time.Second):
						t.Fatalf("idempotent=%v: %d of %d acked", idem, i, n)
					}
				}
				ap.Close()
				// Offsets per partition are dense and unique.
				for p, offs := range offsets {
					slices.Sort(offs)
					for i, o := range offs {
						if o != int64(i) {
							t.Fatalf("partition %d offsets %v", p, offs)
						}
					}
				}
				got := saramaConsumeN(t, cl, topic, n, sarama.OffsetOldest)
				if len(got) != n {
					t.Fatalf("consumed %d", len(got))
				}
			}
		})
	}
}

func TestSaramaConsumerNewest(t *testing.T) {
	for _, ver := range saramaVersions {
		t.Run(ver.name, func(t *testing.T) {
			s := startServer(t, t.TempDir(), func(c *Config) { c.NumPartitions = 1 })
			c := saramaConfig(ver)
			cl := saramaClient(t, s, c)
			p, err := sarama.NewSyncProducerFromClient(cl)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			for i := 0; i < 5; i++ {
				if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "newest", Value: sarama.StringEncoder(fmt.Sprint("old", i))}); err != nil {
					t.Fatal(err)
				}
			}
			for _, tc := range []struct {
				ts   int64
				want int64
			}{{sarama.OffsetOldest, 0}, {sarama.OffsetNewest, 5}} {
				off, err := cl.GetOffset("newest", 0, tc.ts)
				if err != nil || off != tc.want {
					t.Fatalf("GetOffset(%d) = %d, %v; want %d", tc.ts, off, err, tc.want)
				}
			}
			cons, err := sarama.NewConsumerFromClient(cl)
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			pc, err := cons.ConsumePartition("newest", 0, sarama.OffsetNewest)
			if err != nil {
				t.Fatal(err)
			}
			// The partition consumer resolves "newest" before we produce;
			// give it a moment through a probe message loop.
			go func() {
				time.Sleep(200 * time.Millisecond)
				p.SendMessage(&sarama.ProducerMessage{Topic: "newest", Value: sarama.StringEncoder("new")})
			}()
			select {
			case m := <-pc.Messages():
				if string(m.Value) != "new" || m.Offset != 5 {
					t.Fatalf("got %q at %d", m.Value, m.Offset)
				}
			case e := <-pc.Errors():
				t.Fatal(e)
			case <-time.After(15 * time.Second):
				t.Fatal("no message from OffsetNewest")
			}
			pc.Close()
			// Explicit offset in the middle.
			pc2, err := cons.ConsumePartition("newest", 0, 3)
			if err != nil {
				t.Fatal(err)
			}
			defer pc2.Close()
			select {
			case m := <-pc2.Messages():
				if string(m.Value) != "old3" || m.Offset != 3 {
					t.Fatalf("got %q at %d", m.Value, m.Offset)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("no message from offset 3")
			}
			// Out of range.
			if _, err := cons.ConsumePartition("newest", 0, 100); err != sarama.ErrOffsetOutOfRange {
				t.Fatalf("offset 100: %v", err)
			}
		})
	}
}

// groupMember is one sarama ConsumerGroup member recording what it sees.
type groupMember struct {
	name string
	cg   sarama.ConsumerGroup

	mu       sync.Mutex
	claims   map[string][]int32
	messages map[string]int // value -> count
	gens     []int32
	cancel   context.CancelFunc
	done     chan struct{}
}

func (m *groupMember) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	m.claims = s.Claims()
	m.gens = append(m.gens, s.GenerationID())
	m.mu.Unlock()
	return nil
}
func (m *groupMember) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (m *groupMember) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		m.mu.Lock()
		m.messages[string(msg.Value)]++
		m.mu.Unlock()
		s.MarkMessage(msg, "")
	}
	return nil
}

func (m *groupMember) snapshot() (map[string][]int32, map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	claims := map[string][]int32{}
	for k, v := range m.claims {
		claims[k] = slices.Clone(v)
	}
	msgs := map[string]int{}
	for k, v := range m.messages {
		msgs[k] = v
	}
	return claims, msgs
}

func startGroupMember(t *testing.T, s *Server, c *sarama.Config, group, topic, name string) *groupMember {
	t.Helper()
	cg, err := sarama.NewConsumerGroup([]string{s.Addr()}, group, c)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &groupMember{name: name, cg: cg, messages: map[string]int{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		for e := range cg.Errors() {
			t.Logf("%s: group error: %v", name, e)
		}
	}()
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, m); err != nil && ctx.Err() == nil {
				t.Logf("%s: consume: %v", name, err)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	return m
}

func (m *groupMember) stop(t *testing.T) {
	m.cancel()
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not stop", m.name)
	}
	if err := m.cg.Close(); err != nil {
		t.Logf("%s close: %v", m.name, err)
	}
}

func pollUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func saramaProduceValues(t *testing.T, cl sarama.Client, topic string, values []string) {
	t.Helper()
	p, err := sarama.NewSyncProducerFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var msgs []*sarama.ProducerMessage
	for _, v := range values {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(v), Value: sarama.StringEncoder(v)})
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
}

func valuesRange(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprint(prefix, i))
	}
	return out
}

func TestSaramaConsumerGroup(t *testing.T) {
	strategies := []struct {
		name string
		s    func() sarama.BalanceStrategy
	}{
		{"range", sarama.NewBalanceStrategyRange},
		{"roundrobin", sarama.NewBalanceStrategyRoundRobin},
		{"sticky", sarama.NewBalanceStrategySticky},
	}
	for _, ver := range saramaVersions {
		t.Run(ver.name, func(t *testing.T) {
			s := startServer(t, t.TempDir(), func(c *Config) { c.NumPartitions = 4 })
			for _, st := range strategies {
				t.Run(st.name, func(t *testing.T) {
					topic, group := "cg-"+st.name, "grp-"+st.name
					c := saramaConfig(ver)
					c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{st.s()}
					c.Consumer.Offsets.Initial = sarama.OffsetOldest
					pcl := saramaClient(t, s, saramaConfig(ver))
					saramaProduceValues(t, pcl, topic, valuesRange("a", 0, 40))

					a := startGroupMember(t, s, c, group, topic, "A")
					pollUntil(t, "A consumes the first 40", 30*time.Second, func() bool {
						_, msgs := a.snapshot()
						return len(msgs) == 40
					})
					b := startGroupMember(t, s, c, group, topic, "B")
					pollUntil(t, "A and B split 4 partitions", 30*time.Second, func() bool {
						ca, _ := a.snapshot()
						cb, _ := b.snapshot()
						pa, pb := ca[topic], cb[topic]
						if len(pa) == 0 || len(pb) == 0 || len(pa)+len(pb) != 4 {
							return false
						}
						all := append(slices.Clone(pa), pb...)
						slices.Sort(all)
						return slices.Equal(all, []int32{0, 1, 2, 3})
					})
					saramaProduceValues(t, pcl, topic, valuesRange("b", 0, 40))
					pollUntil(t, "A and B consume the next 40", 30*time.Second, func() bool {
						_, ma := a.snapshot()
						_, mb := b.snapshot()
						n := 0
						for _, v := range valuesRange("b", 0, 40) {
							if ma[v]+mb[v] > 0 {
								n++
							}
						}
						return n == 40
					})
					// Describe the live group through the admin API while stable.
					adm, err := sarama.NewClusterAdminFromClient(saramaClient(t, s, saramaConfig(ver)))
					if err != nil {
						t.Fatal(err)
					}
					descs, err := adm.DescribeConsumerGroups([]string{group})
					if err != nil {
						t.Fatal(err)
					}
					if len(descs) != 1 || descs[0].State != "Stable" || descs[0].ProtocolType != "consumer" || descs[0].Protocol != st.s().Name() || len(descs[0].Members) != 2 {
						t.Fatalf("describe: %+v", descs[0])
					}
					assigned := 0
					for id, md := range descs[0].Members {
						meta, err := md.GetMemberMetadata()
						if err != nil || !slices.Contains(meta.Topics, topic) {
							t.Fatalf("member %s metadata %+v: %v", id, meta, err)
						}
						as, err := md.GetMemberAssignment()
						if err != nil {
							t.Fatalf("member %s assignment: %v", id, err)
						}
						assigned += len(as.Topics[topic])
					}
					if assigned != 4 {
						t.Fatalf("described assignments cover %d partitions", assigned)
					}
					a.stop(t)
					b.stop(t)
					// Committed offsets: 80 records over 4 partitions.
					offs, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2, 3}})
					if err != nil {
						t.Fatal(err)
					}
					var total int64
					for _, blk := range offs.Blocks[topic] {
						if blk.Err != sarama.ErrNoError {
							t.Fatal(blk.Err)
						}
						total += blk.Offset
					}
					if total != 80 {
						t.Fatalf("committed total %d, want 80", total)
					}
					// A new member resumes from the commits: it sees only new data.
					saramaProduceValues(t, pcl, topic, valuesRange("c", 0, 20))
					cm := startGroupMember(t, s, c, group, topic, "C")
					pollUntil(t, "C consumes the last 20", 30*time.Second, func() bool {
						_, mc := cm.snapshot()
						return len(mc) >= 20
					})
					time.Sleep(300 * time.Millisecond)
					_, mc := cm.snapshot()
					for v := range mc {
						if v[0] != 'c' {
							t.Fatalf("C re-read %q: committed offsets were not resumed", v)
						}
					}
					cm.stop(t)
					adm.Close()
				})
			}
		})
	}
}

func TestSaramaClusterAdmin(t *testing.T) {
	for _, ver := range saramaVersions {
		t.Run(ver.name, func(t *testing.T) {
			s := startServer(t, t.TempDir())
			c := saramaConfig(ver)
			cl := saramaClient(t, s, c)
			adm, err := sarama.NewClusterAdminFromClient(cl)
			if err != nil {
				t.Fatal(err)
			}
			ret := "3600000"
			if err := adm.CreateTopic("admin-t", &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1,
				ConfigEntries: map[string]*string{"retention.ms": &ret}}, false); err != nil {
				t.Fatalf("CreateTopic: %v", err)
			}
			err = adm.CreateTopic("admin-t", &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false)
			if te, ok := err.(*sarama.TopicError); !ok || te.Err != sarama.ErrTopicAlreadyExists {
				t.Fatalf("CreateTopic again: %v", err)
			}
			if err := adm.CreateTopic("bad", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 3}, false); err == nil {
				t.Fatal("replication factor 3 on one broker accepted")
			}
			topics, err := adm.ListTopics()
			if err != nil {
				t.Fatalf("ListTopics: %v", err)
			}
			d, ok := topics["admin-t"]
			if !ok || d.NumPartitions != 2 || d.ReplicationFactor != 1 {
				t.Fatalf("ListTopics: %+v", topics)
			}
			if ver.v.IsAtLeast(sarama.V0_11_0_0) && (d.ConfigEntries["retention.ms"] == nil || *d.ConfigEntries["retention.ms"] != ret) {
				t.Fatalf("ListTopics config entries: %v", d.ConfigEntries)
			}
			if _, ok := topics[offsetsTopic]; ok {
				// Kafka lists internal topics too; sarama shows them. Fine either way.
				_ = ok
			}
			md, err := adm.DescribeTopics([]string{"admin-t", "nope"})
			if err != nil {
				t.Fatalf("DescribeTopics: %v", err)
			}
			sort.Slice(md, func(i, j int) bool { return md[i].Name < md[j].Name })
			if len(md) != 2 || md[0].Name != "admin-t" || md[0].Err != sarama.ErrNoError || len(md[0].Partitions) != 2 ||
				md[0].Partitions[0].Leader != 0 || md[1].Err != sarama.ErrUnknownTopicOrPartition {
				t.Fatalf("DescribeTopics: %+v %+v", md[0], md[1])
			}
			brokers, ctrl, err := adm.DescribeCluster()
			if err != nil || len(brokers) != 1 || ctrl != 0 {
				t.Fatalf("DescribeCluster: %v %d %v", brokers, ctrl, err)
			}
			entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: "admin-t"})
			if err != nil {
				t.Fatalf("DescribeConfig: %v", err)
			}
			found := false
			for _, e := range entries {
				if e.Name == "retention.ms" {
					found = e.Value == ret && !e.Default
				}
			}
			if !found {
				t.Fatalf("DescribeConfig retention.ms: %+v", entries)
			}
			bentries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.BrokerResource, Name: "0"})
			if err != nil || len(bentries) == 0 {
				t.Fatalf("DescribeConfig broker: %v %v", bentries, err)
			}

			// A group with only committed offsets.
			om, err := sarama.NewOffsetManagerFromClient("admin-g", cl)
			if err != nil {
				t.Fatal(err)
			}
			pom, err := om.ManagePartition("admin-t", 1)
			if err != nil {
				t.Fatal(err)
			}
			pom.MarkOffset(7, "meta")
			om.Commit()
			pom.Close()
			om.Close()
			got, err := adm.ListConsumerGroupOffsets("admin-g", map[string][]int32{"admin-t": {0, 1}})
			if err != nil {
				t.Fatal(err)
			}
			if b := got.GetBlock("admin-t", 1); b == nil || b.Offset != 7 || b.Metadata != "meta" {
				t.Fatalf("committed: %+v", b)
			}
			if b := got.GetBlock("admin-t", 0); b == nil || b.Offset != -1 {
				t.Fatalf("uncommitted partition: %+v", b)
			}
			groups, err := adm.ListConsumerGroups()
			if err != nil || groups["admin-g"] != "consumer" {
				t.Fatalf("ListConsumerGroups: %v %v", groups, err)
			}
			descs, err := adm.DescribeConsumerGroups([]string{"admin-g"})
			if err != nil || len(descs) != 1 || descs[0].State != "Empty" || descs[0].Err != sarama.ErrNoError {
				t.Fatalf("DescribeConsumerGroups: %+v %v", descs, err)
			}
			// sarama itself refuses DeleteGroups below Kafka 1.1.
			if ver.v.IsAtLeast(sarama.V1_1_0_0) {
				if err := adm.DeleteConsumerGroup("admin-g"); err != nil {
					t.Fatalf("DeleteConsumerGroup: %v", err)
				}
				if err := adm.DeleteConsumerGroup("admin-g"); err == nil {
					t.Fatal("deleting a deleted group succeeded")
				}
				groups, err = adm.ListConsumerGroups()
				if err != nil || groups["admin-g"] != "" {
					t.Fatalf("ListConsumerGroups after delete: %v %v", groups, err)
				}
			}
			if err := adm.DeleteTopic("admin-t"); err != nil {
				t.Fatalf("DeleteTopic: %v", err)
			}
			if err := adm.DeleteTopic("admin-t"); err == nil {
				t.Fatal("deleting a deleted topic succeeded")
			}
			pollUntil(t, "topic gone from ListTopics", 10*time.Second, func() bool {
				topics, err := adm.ListTopics()
				_, ok := topics["admin-t"]
				return err == nil && !ok
			})
		})
	}
}

// TestSaramaEdgeCases: acks=0 (no Produce response at all), a 1-byte
// fetch size (the broker must still return a whole batch, KIP-74) and
// read_committed consumers (LSO = HW without transactions).
func TestSaramaEdgeCases(t *testing.T) {
	for _, ver := range saramaVersions {
		t.Run(ver.name, func(t *testing.T) {
			s := startServer(t, t.TempDir(), func(c *Config) { c.NumPartitions = 1 })
			c := saramaConfig(ver)
			c.Producer.RequiredAcks = sarama.NoResponse
			c.Producer.Return.Errors = true
			cl := saramaClient(t, s, c)
			ap, err := sarama.NewAsyncProducerFromClient(cl)
			if err != nil {
				t.Fatal(err)
			}
			const n = 100
			for i := 0; i < n; i++ {
				ap.Input() <- &sarama.ProducerMessage{Topic: "edge", Value: sarama.StringEncoder(fmt.Sprintf("%03d", i))}
			}
			for i := 0; i < n; i++ {
				select {
				case <-ap.Successes():
				case e := <-ap.Errors():
					t.Fatal(e)
				case <-time.After(10 * time.Second):
					t.Fatalf("acks=0: %d of %d returned", i, n)
				}
			}
			ap.Close()
			pollUntil(t, "acks=0 records stored", 10*time.Second, func() bool {
				off, err := cl.GetOffset("edge", 0, sarama.OffsetNewest)
				return err == nil && off == n
			})

			c2 := saramaConfig(ver)
			c2.Consumer.Fetch.Min = 1
			c2.Consumer.Fetch.Default = 1
			c2.Consumer.Fetch.Max = 0
			if ver.v.IsAtLeast(sarama.V0_11_0_0) {
				c2.Consumer.IsolationLevel = sarama.ReadCommitted
			}
			cl2 := saramaClient(t, s, c2)
			got := saramaConsumeN(t, cl2, "edge", n, sarama.OffsetOldest)
			for i, m := range got {
				if string(m.Value) != fmt.Sprintf("%03d", i) || m.Offset != int64(i) {
					t.Fatalf("message %d: %q at %d", i, m.Value, m.Offset)
				}
			}
		})
	}
}
