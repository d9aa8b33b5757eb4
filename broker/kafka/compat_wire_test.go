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
