package kafka

// Compatibility with segmentio/kafka-go: its Writer (negotiated Produce),
// its Reader (Fetch v10 through kafka.Conn, consumer groups through the
// conn-level FindCoordinator v0 / JoinGroup v1 / SyncGroup v0 / OffsetCommit
// v2 path), kafka.Conn admin calls and kafka.Client.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
)

func kafkagoLogger() kafkago.Logger {
	if os.Getenv("DROVER_TEST_CLIENT_LOG") == "" {
		return nil
	}
	return log.New(os.Stderr, "[kafka-go] ", log.Lmicroseconds)
}

func kafkagoWrite(t *testing.T, s *Server, topic string, acks kafkago.RequiredAcks, codec kafkago.Compression, msgs []kafkago.Message) {
	t.Helper()
	w := &kafkago.Writer{Addr: kafkago.TCP(s.Addr()), Topic: topic, RequiredAcks: acks, Compression: codec,
		Balancer: &kafkago.Hash{}, BatchTimeout: 5 * time.Millisecond, AllowAutoTopicCreation: true,
		Logger: kafkagoLogger(), ErrorLogger: kafkagoLogger()}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		// The first write to a new topic can race its auto-creation
		// (kafka-go reports UNKNOWN_TOPIC_OR_PARTITION / LEADER_NOT_AVAILABLE).
		if err = w.WriteMessages(ctx, msgs...); err == nil {
			return
		}
		if !errors.Is(err, kafkago.UnknownTopicOrPartition) && !errors.Is(err, kafkago.LeaderNotAvailable) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("write %s (acks %d, %v): %v", topic, acks, codec, err)
}

func TestKafkaGoWriterReader(t *testing.T) {
	s := startServer(t, t.TempDir())
	codecs := []kafkago.Compression{0, kafkago.Gzip, kafkago.Snappy, kafkago.Lz4, kafkago.Zstd}
	for _, codec := range codecs {
		for _, acks := range []kafkago.RequiredAcks{kafkago.RequireNone, kafkago.RequireOne, kafkago.RequireAll} {
			name := "none"
			if codec != 0 {
				name = compress.Compression(codec).String()
			}
			topic := fmt.Sprintf("kgo-%s-%d", name, acks)
			t.Run(topic, func(t *testing.T) {
				const n = 50
				var msgs []kafkago.Message
				for i := 0; i < n; i++ {
					msgs = append(msgs, kafkago.Message{Key: []byte(fmt.Sprint("k", i)), Value: []byte(fmt.Sprint("v", i)),
						Headers: []kafkago.Header{{Key: "h", Value: []byte(fmt.Sprint(i))}}})
				}
				if acks == kafkago.RequireNone {
					// acks=0 gets no response: make sure the topic exists first.
					kafkagoWrite(t, s, topic, kafkago.RequireOne, codec, msgs[:1])
					kafkagoWrite(t, s, topic, acks, codec, msgs[1:])
					pollUntil(t, "acks=0 records stored", 10*time.Second, func() bool {
						var total int64
						for p := 0; p < 3; p++ {
							conn, err := kafkago.DialLeader(context.Background(), "tcp", s.Addr(), topic, p)
							if err != nil {
								return false
							}
							last, _ := conn.ReadLastOffset()
							conn.Close()
							total += last
						}
						return total == n
					})
				} else {
					kafkagoWrite(t, s, topic, acks, codec, msgs)
				}
				// Read every partition from the start (Reader by partition).
				seen := map[string]bool{}
				for p := 0; p < 3; p++ {
					r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{s.Addr()}, Topic: topic, Partition: p,
						MaxWait: 100 * time.Millisecond, Logger: kafkagoLogger(), ErrorLogger: kafkagoLogger()})
					if err := r.SetOffset(kafkago.FirstOffset); err != nil {
						t.Fatal(err)
					}
					conn, err := kafkago.DialLeader(context.Background(), "tcp", s.Addr(), topic, p)
					if err != nil {
						t.Fatal(err)
					}
					last, err := conn.ReadLastOffset()
					conn.Close()
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					for i := int64(0); i < last; i++ {
						m, err := r.ReadMessage(ctx)
						if err != nil {
							t.Fatalf("partition %d offset %d/%d: %v", p, i, last, err)
						}
						if m.Offset != i || m.Partition != p {
							t.Fatalf("read %d/%d, want %d/%d", m.Partition, m.Offset, p, i)
						}
						v := string(m.Value)
						if string(m.Key) != "k"+v[1:] || len(m.Headers) != 1 || m.Headers[0].Key != "h" || string(m.Headers[0].Value) != v[1:] {
							t.Fatalf("message %+v", m)
						}
						if time.Since(m.Time) > time.Minute {
							t.Fatalf("time %v", m.Time)
						}
						seen[v] = true
					}
					cancel()
					r.Close()
				}
				if len(seen) != n {
					t.Fatalf("read %d distinct of %d", len(seen), n)
				}
			})
		}
	}
}

func TestKafkaGoConn(t *testing.T) {
	s := startServer(t, t.TempDir())
	conn, err := kafkago.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))

	versions, err := conn.ApiVersions()
	if err != nil {
		t.Fatalf("ApiVersions: %v", err)
	}
	byKey := map[int16]kafkago.ApiVersion{}
	for _, v := range versions {
		byKey[v.ApiKey] = v
	}
	if v, ok := byKey[1]; !ok || v.MinVersion > 10 || v.MaxVersion < 10 {
		t.Fatalf("Fetch versions %+v: kafka-go needs v10 for zstd", v)
	}
	if v, ok := byKey[10]; !ok || v.MinVersion != 0 {
		t.Fatalf("FindCoordinator versions %+v: kafka-go sends v0", v)
	}

	if err := conn.CreateTopics(
		kafkago.TopicConfig{Topic: "conn-a", NumPartitions: 4, ReplicationFactor: 1,
			ConfigEntries: []kafkago.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "60000"}}},
		kafkago.TopicConfig{Topic: "conn-b", NumPartitions: 1, ReplicationFactor: 1},
	); err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	// kafka-go treats TOPIC_ALREADY_EXISTS as success.
	if err := conn.CreateTopics(kafkago.TopicConfig{Topic: "conn-b", NumPartitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatalf("CreateTopics existing: %v", err)
	}
	parts, err := conn.ReadPartitions("conn-a", "conn-b")
	if err != nil {
		t.Fatalf("ReadPartitions: %v", err)
	}
	if len(parts) != 5 {
		t.Fatalf("ReadPartitions: %+v", parts)
	}
	for _, p := range parts {
		if p.Leader.ID != 0 || p.Leader.Port == 0 || len(p.Replicas) != 1 || len(p.Isr) != 1 {
			t.Fatalf("partition %+v", p)
		}
	}
	all, err := conn.ReadPartitions()
	if err != nil {
		t.Fatalf("ReadPartitions(all): %v", err)
	}
	names := map[string]bool{}
	for _, p := range all {
		names[p.Topic] = true
	}
	if !names["conn-a"] || !names["conn-b"] {
		t.Fatalf("ReadPartitions(all): %v", names)
	}
	ctrl, err := conn.Controller()
	if err != nil || ctrl.ID != 0 {
		t.Fatalf("Controller: %+v %v", ctrl, err)
	}
	brokers, err := conn.Brokers()
	if err != nil || len(brokers) != 1 {
		t.Fatalf("Brokers: %+v %v", brokers, err)
	}

	// Partition-level conn: write, offsets, seek, batch read, offset by time.
	lc, err := kafkago.DialLeader(context.Background(), "tcp", s.Addr(), "conn-b", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	lc.SetDeadline(time.Now().Add(30 * time.Second))
	before := time.Now().Add(-time.Second)
	for _, codec := range []kafkago.CompressionCodec{nil, &compress.GzipCodec, &compress.SnappyCodec, &compress.Lz4Codec, &compress.ZstdCodec} {
		var msgs []kafkago.Message
		for i := 0; i < 10; i++ {
			msgs = append(msgs, kafkago.Message{Value: []byte(fmt.Sprint("m", i))})
		}
		if _, err := lc.WriteCompressedMessages(codec, msgs...); err != nil {
			t.Fatalf("WriteCompressedMessages(%v): %v", codec, err)
		}
	}
	first, last, err := lc.ReadOffsets()
	if err != nil || first != 0 || last != 50 {
		t.Fatalf("ReadOffsets: %d %d %v", first, last, err)
	}
	if off, err := lc.ReadOffset(before); err != nil || off != 0 {
		t.Fatalf("ReadOffset(before): %d %v", off, err)
	}
	if off, err := lc.ReadOffset(time.Now().Add(time.Hour)); err != nil || off != 50 {
		// Kafka answers -1 for a time after the last record; kafka-go
		// maps that to the last offset? It returns what the broker says.
		if off != -1 {
			t.Fatalf("ReadOffset(future): %d %v", off, err)
		}
	}
	if _, err := lc.Seek(25, kafkago.SeekAbsolute); err != nil {
		t.Fatal(err)
	}
	b := lc.ReadBatch(1, 1<<20)
	m, err := b.ReadMessage()
	if err != nil || m.Offset != 25 || string(m.Value) != "m5" {
		t.Fatalf("after seek 25: %+v %v", m, err)
	}
	b.Close()

	if err := conn.DeleteTopics("conn-a"); err != nil {
		t.Fatalf("DeleteTopics: %v", err)
	}
	if err := conn.DeleteTopics("conn-a"); !errors.Is(err, kafkago.UnknownTopicOrPartition) {
		t.Fatalf("DeleteTopics again: %v", err)
	}
	pollUntil(t, "conn-a gone", 10*time.Second, func() bool {
		parts, err := conn.ReadPartitions()
		if err != nil {
			return false
		}
		for _, p := range parts {
			if p.Topic == "conn-a" {
				return false
			}
		}
		return true
	})
}

type kgoGroupReader struct {
	name string
	r    *kafkago.Reader

	mu   sync.Mutex
	seen map[string]int
	err  error
	done chan struct{}
}

func startKafkaGoGroupReader(t *testing.T, s *Server, group, topic, name string, balancers ...kafkago.GroupBalancer) *kgoGroupReader {
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{s.Addr()}, GroupID: group, Topic: topic,
		StartOffset: kafkago.FirstOffset, MaxWait: 100 * time.Millisecond, HeartbeatInterval: 300 * time.Millisecond,
		SessionTimeout: 6 * time.Second, RebalanceTimeout: 5 * time.Second, JoinGroupBackoff: 200 * time.Millisecond,
		CommitInterval: 0, GroupBalancers: balancers, ReadBackoffMax: 200 * time.Millisecond,
		Logger: kafkagoLogger(), ErrorLogger: kafkagoLogger()})
	g := &kgoGroupReader{name: name, r: r, seen: map[string]int{}, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		for {
			// ReadMessage commits synchronously (CommitInterval 0).
			m, err := r.ReadMessage(context.Background())
			if err != nil {
				g.mu.Lock()
				g.err = err
				g.mu.Unlock()
				return
			}
			g.mu.Lock()
			g.seen[string(m.Value)]++
			g.mu.Unlock()
		}
	}()
	return g
}

func (g *kgoGroupReader) values() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for k, v := range g.seen {
		out[k] = v
	}
	return out
}

func (g *kgoGroupReader) close(t *testing.T) {
	g.r.Close()
	select {
	case <-g.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: reader did not stop", g.name)
	}
	if g.err != nil && !errors.Is(g.err, io.EOF) && !strings.Contains(g.err.Error(), "closed") {
		t.Logf("%s: reader ended with %v", g.name, g.err)
	}
}

func kafkagoMessages(prefix string, from, to int) []kafkago.Message {
	var out []kafkago.Message
	for _, v := range valuesRange(prefix, from, to) {
		out = append(out, kafkago.Message{Key: []byte(v), Value: []byte(v)})
	}
	return out
}

func TestKafkaGoConsumerGroup(t *testing.T) {
	for _, bal := range []struct {
		name string
		b    kafkago.GroupBalancer
	}{{"range", kafkago.RangeGroupBalancer{}}, {"roundrobin", kafkago.RoundRobinGroupBalancer{}}} {
		t.Run(bal.name, func(t *testing.T) {
			s := startServer(t, t.TempDir(), func(c *Config) { c.NumPartitions = 4 })
			topic, group := "kg-"+bal.name, "kgg-"+bal.name
			kafkagoWrite(t, s, topic, kafkago.RequireAll, 0, kafkagoMessages("a", 0, 40))
			a := startKafkaGoGroupReader(t, s, group, topic, "A", bal.b)
			pollUntil(t, "A reads 40", 30*time.Second, func() bool { return len(a.values()) == 40 })
			b := startKafkaGoGroupReader(t, s, group, topic, "B", bal.b)
			cl := &kafkago.Client{Addr: kafkago.TCP(s.Addr()), Timeout: 10 * time.Second}
			// Wait for a stable generation with both members holding partitions.
			pollUntil(t, "two members share the partitions", 30*time.Second, func() bool {
				resp, err := cl.DescribeGroups(context.Background(), &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
				if err != nil || len(resp.Groups) != 1 || resp.Groups[0].GroupState != "Stable" || len(resp.Groups[0].Members) != 2 {
					return false
				}
				var all []int
				for _, m := range resp.Groups[0].Members {
					if len(m.MemberAssignments.Topics) != 1 || m.MemberAssignments.Topics[0].Topic != topic {
						return false
					}
					if !slices.Contains(m.MemberMetadata.Topics, topic) {
						t.Fatalf("member metadata %+v", m.MemberMetadata)
					}
					all = append(all, m.MemberAssignments.Topics[0].Partitions...)
				}
				sort.Ints(all)
				return slices.Equal(all, []int{0, 1, 2, 3})
			})
			kafkagoWrite(t, s, topic, kafkago.RequireAll, 0, kafkagoMessages("b", 0, 40))
			pollUntil(t, "A and B read the next 40", 30*time.Second, func() bool {
				va, vb := a.values(), b.values()
				for _, v := range valuesRange("b", 0, 40) {
					if va[v]+vb[v] == 0 {
						return false
					}
				}
				return true
			})
			if vb := b.values(); len(vb) == 0 {
				t.Fatal("B read nothing after the rebalance")
			}
			a.close(t)
			b.close(t)

			// Committed offsets (kafka.Client, OffsetFetch) cover all 80.
			offs, err := cl.ConsumerOffsets(context.Background(), kafkago.TopicAndGroup{Topic: topic, GroupId: group})
			if err != nil {
				t.Fatal(err)
			}
			var total int64
			for _, o := range offs {
				total += o
			}
			if total != 80 {
				t.Fatalf("committed %v (total %d), want 80", offs, total)
			}
			lg, err := cl.ListGroups(context.Background(), &kafkago.ListGroupsRequest{})
			if err != nil || !slices.ContainsFunc(lg.Groups, func(g kafkago.ListGroupsResponseGroup) bool {
				return g.GroupID == group && g.ProtocolType == "consumer"
			}) {
				t.Fatalf("ListGroups: %+v %v", lg, err)
			}

			// A new member resumes where the group left off.
			kafkagoWrite(t, s, topic, kafkago.RequireAll, 0, kafkagoMessages("c", 0, 20))
			c := startKafkaGoGroupReader(t, s, group, topic, "C", bal.b)
			pollUntil(t, "C reads the last 20", 30*time.Second, func() bool { return len(c.values()) >= 20 })
			time.Sleep(300 * time.Millisecond)
			for v := range c.values() {
				if v[0] != 'c' {
					t.Fatalf("C re-read %q: committed offsets not resumed", v)
				}
			}
			c.close(t)

			dg, err := cl.DeleteGroups(context.Background(), &kafkago.DeleteGroupsRequest{GroupIDs: []string{group}})
			if err != nil || dg.Errors[group] != nil {
				t.Fatalf("DeleteGroups: %+v %v", dg, err)
			}
		})
	}
}

// TestKafkaGoClient covers kafka.Client calls that go through the
// negotiated protocol package.
func TestKafkaGoClient(t *testing.T) {
	s := startServer(t, t.TempDir())
	cl := &kafkago.Client{Addr: kafkago.TCP(s.Addr()), Timeout: 10 * time.Second}
	ctx := context.Background()
	ct, err := cl.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{Topic: "cl-t", NumPartitions: 2, ReplicationFactor: 1}}})
	if err != nil || ct.Errors["cl-t"] != nil {
		t.Fatalf("CreateTopics: %+v %v", ct, err)
	}
	md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{"cl-t"}})
	if err != nil || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 2 || md.Controller.ID != 0 || md.ClusterID == "" {
		t.Fatalf("Metadata: %+v %v", md, err)
	}
	av, err := cl.ApiVersions(ctx, &kafkago.ApiVersionsRequest{})
	if err != nil || av.Error != nil || len(av.ApiKeys) == 0 {
		t.Fatalf("ApiVersions: %+v %v", av, err)
	}
	kafkagoWrite(t, s, "cl-t", kafkago.RequireAll, kafkago.Zstd, kafkagoMessages("x", 0, 20))
	lo, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{
		"cl-t": {kafkago.FirstOffsetOf(0), kafkago.LastOffsetOf(0), kafkago.FirstOffsetOf(1), kafkago.LastOffsetOf(1)}}})
	if err != nil {
		t.Fatalf("ListOffsets: %v", err)
	}
	var total int64
	for _, po := range lo.Topics["cl-t"] {
		if po.Error != nil || po.FirstOffset != 0 {
			t.Fatalf("ListOffsets partition %+v", po)
		}
		total += po.LastOffset
	}
	if total != 20 {
		t.Fatalf("ListOffsets: %+v", lo.Topics)
	}
	fr, err := cl.Fetch(ctx, &kafkago.FetchRequest{Topic: "cl-t", Partition: 0, Offset: 0, MaxBytes: 1 << 20})
	if err != nil || fr.Error != nil || fr.HighWatermark == 0 {
		t.Fatalf("Fetch: %+v %v", fr, err)
	}
	n := 0
	for {
		if _, err := fr.Records.ReadRecord(); err != nil {
			break
		}
		n++
	}
	if int64(n) != fr.HighWatermark {
		t.Fatalf("fetched %d records, hw %d", n, fr.HighWatermark)
	}
	dc, err := cl.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{Resources: []kafkago.DescribeConfigRequestResource{
		{ResourceType: kafkago.ResourceTypeTopic, ResourceName: "cl-t", ConfigNames: []string{"retention.ms"}}}})
	if err != nil || len(dc.Resources) != 1 || dc.Resources[0].Error != nil || len(dc.Resources[0].ConfigEntries) != 1 {
		t.Fatalf("DescribeConfigs: %+v %v", dc, err)
	}
	dt, err := cl.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{"cl-t"}})
	if err != nil || dt.Errors["cl-t"] != nil {
		t.Fatalf("DeleteTopics: %+v %v", dt, err)
	}
}
