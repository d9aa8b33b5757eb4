package kafka

// Protocol details that real clients depend on, checked with raw kmsg
// requests where no client exercises them directly.

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestListOffsetsDuplicatePartition: Kafka refuses a partition listed
// twice in one ListOffsets request with INVALID_REQUEST on each entry.
// (librdkafka dedupes "kcat -Q -t t:0:a -t t:0:b" to the last entry.)
func TestListOffsetsDuplicatePartition(t *testing.T) {
	s := startServer(t, t.TempDir())
	cl := client(t, s, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, v := range []string{"a", "b"} {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "qd", Partition: 0, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = "qd"
	for _, ts := range []int64{-1, -2, -1} {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = 0, ts
		rt.Partitions = append(rt.Partitions, rp)
	}
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = 1, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	ps := resp.Topics[0].Partitions
	if len(ps) != 4 || ps[0].ErrorCode != 42 || ps[1].ErrorCode != 42 || ps[2].ErrorCode != 42 || ps[3].ErrorCode != 0 || ps[3].Offset != 0 {
		t.Fatalf("ListOffsets with a duplicated partition: %+v", ps)
	}
}

// TestMetadataAllVersions: what clients read from Metadata at each version
// (sarama 0.11-4.x, kafka-go v1, librdkafka v4+, Java v12).
func TestMetadataAllVersions(t *testing.T) {
	s := startServer(t, t.TempDir())
	cl := client(t, s, kgo.DefaultProduceTopic("md"))
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for v := int16(0); v <= 12; v++ {
		for _, mode := range []string{"all", "empty", "named"} {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = v
			switch mode {
			case "empty":
				req.Topics = []kmsg.MetadataRequestTopic{}
			case "named":
				rt := kmsg.NewMetadataRequestTopic()
				rt.Topic = kmsg.StringPtr("md")
				req.Topics = append(req.Topics, rt)
			}
			if v == 0 && mode == "all" {
				continue // v0 has no null array: empty means all
			}
			resp, err := req.RequestWith(context.Background(), pinVersion{cl, v})
			if err != nil {
				t.Fatalf("v%d %s: %v", v, mode, err)
			}
			if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 0 || resp.Brokers[0].Port == 0 {
				t.Fatalf("v%d brokers %+v", v, resp.Brokers)
			}
			if v >= 1 && resp.ControllerID != 0 {
				t.Fatalf("v%d controller %d", v, resp.ControllerID)
			}
			if v >= 2 && (resp.ClusterID == nil || *resp.ClusterID == "") {
				t.Fatalf("v%d cluster id missing", v)
			}
			if v >= 8 && v <= 10 && resp.AuthorizedOperations != -2147483648 {
				t.Fatalf("v%d cluster authorized operations %d", v, resp.AuthorizedOperations)
			}
			want := map[string]bool{"md": true}
			switch {
			case mode == "empty" && v >= 1:
				want = map[string]bool{}
			case mode != "named":
				want[offsetsTopic] = true
			}
			got := map[string]bool{}
			for _, mt := range resp.Topics {
				got[*mt.Topic] = true
				if mt.ErrorCode != 0 || len(mt.Partitions) == 0 {
					t.Fatalf("v%d topic %+v", v, mt)
				}
				if v >= 1 && mt.IsInternal != (*mt.Topic == offsetsTopic) {
					t.Fatalf("v%d %s internal=%v", v, *mt.Topic, mt.IsInternal)
				}
				if v >= 8 && mt.AuthorizedOperations != -2147483648 {
					t.Fatalf("v%d topic authorized operations %d", v, mt.AuthorizedOperations)
				}
				if v >= 10 && mt.TopicID == ([16]byte{}) {
					t.Fatalf("v%d topic %s has no id", v, *mt.Topic)
				}
				for _, p := range mt.Partitions {
					if p.Leader != 0 || len(p.Replicas) != 1 || len(p.ISR) != 1 || (v >= 7 && p.LeaderEpoch < 0 && *mt.Topic != offsetsTopic) {
						t.Fatalf("v%d partition %+v", v, p)
					}
				}
			}
			if len(got) != len(want) {
				t.Fatalf("v%d %s: topics %v, want %v", v, mode, got, want)
			}
			for k := range want {
				if !got[k] {
					t.Fatalf("v%d %s: topics %v, want %v", v, mode, got, want)
				}
			}
		}
	}
}

// pinVersion makes kgo send a request at exactly the version set on it.
type pinVersion struct {
	cl *kgo.Client
	v  int16
}

func (p pinVersion) Request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	return p.cl.Request(ctx, &pinned{req, p.v})
}

type pinned struct {
	kmsg.Request
	v int16
}

func (p *pinned) MaxVersion() int16 { return p.v }
func (p *pinned) SetVersion(int16)  { p.Request.SetVersion(p.v) }

func TestDescribeClusterAndDeleteTopicsByID(t *testing.T) {
	s := startServer(t, t.TempDir())
	cl := client(t, s)
	ctx := context.Background()
	for v := int16(0); v <= 1; v++ {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.Version = v
		req.EndpointType = 1
		resp, err := req.RequestWith(ctx, pinVersion{cl, v})
		if err != nil || resp.ErrorCode != 0 || len(resp.Brokers) != 1 || resp.ControllerID != 0 || resp.ClusterID == "" {
			t.Fatalf("DescribeCluster v%d: %+v %v", v, resp, err)
		}
	}
	req := kmsg.NewPtrDescribeClusterRequest()
	req.Version = 1
	req.EndpointType = 2
	resp, err := req.RequestWith(ctx, pinVersion{cl, 1})
	if err != nil || resp.ErrorCode != 115 {
		t.Fatalf("DescribeCluster controllers: %+v %v", resp, err)
	}

	ct := kmsg.NewPtrCreateTopicsRequest()
	for _, name := range []string{"del-by-id", "del-by-name"} {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 1, 1
		ct.Topics = append(ct.Topics, rt)
	}
	cresp, err := ct.RequestWith(ctx, cl)
	if err != nil || cresp.Topics[0].ErrorCode != 0 || cresp.Topics[0].TopicID == ([16]byte{}) {
		t.Fatalf("CreateTopics: %+v %v", cresp, err)
	}
	id := cresp.Topics[0].TopicID
	dt := kmsg.NewPtrDeleteTopicsRequest()
	dt.Version = 6
	byID := kmsg.NewDeleteTopicsRequestTopic()
	byID.TopicID = id
	byName := kmsg.NewDeleteTopicsRequestTopic()
	byName.Topic = kmsg.StringPtr("del-by-name")
	unknown := kmsg.NewDeleteTopicsRequestTopic()
	unknown.TopicID = [16]byte{1, 2, 3}
	dt.Topics = []kmsg.DeleteTopicsRequestTopic{byID, byName, unknown}
	dresp, err := dt.RequestWith(ctx, pinVersion{cl, 6})
	if err != nil || len(dresp.Topics) != 3 {
		t.Fatalf("DeleteTopics v6: %+v %v", dresp, err)
	}
	for _, r := range dresp.Topics {
		switch {
		case r.TopicID == id:
			if r.ErrorCode != 0 || r.Topic == nil || *r.Topic != "del-by-id" {
				t.Fatalf("delete by id: %+v", r)
			}
		case r.TopicID == [16]byte{1, 2, 3}:
			if r.ErrorCode != 100 {
				t.Fatalf("delete unknown id: %+v", r)
			}
		default:
			if r.ErrorCode != 0 || r.Topic == nil || *r.Topic != "del-by-name" || r.TopicID == ([16]byte{}) {
				t.Fatalf("delete by name: %+v", r)
			}
		}
	}
	if snap := s.store.Snapshot(); snap.Topics["del-by-id"] != nil || snap.Topics["del-by-name"] != nil {
		t.Fatal("topics still exist")
	}
}
