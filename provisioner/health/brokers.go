package health

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// CanaryTopic is the topic the health canary writes to; one partition per broker, so every broker
// leads one and the canary proves each of them.
const CanaryTopic = "drover-canary"

// Broker is one inventory broker in the report.
type Broker struct {
	Target
	Registered bool   `json:"registered"`
	Advertised string `json:"advertised,omitempty"`
	Reachable  bool   `json:"reachable"`
	Controller bool   `json:"controller,omitempty"`
	Err        string `json:"error,omitempty"`
}

// Brokers is the broker half of the report.
type Brokers struct {
	Brokers         []Broker `json:"brokers"`
	Controller      int32    `json:"controller"`
	Partitions      int      `json:"partitions"`
	Offline         int      `json:"offline_partitions"`
	UnderReplicated int      `json:"under_replicated_partitions"`
	Problems        []string `json:"problems,omitempty"`
}

// Client opens a franz-go client whose every connection goes through dial.
func Client(dial Dialer, seeds []string, opts ...kgo.Opt) (*kgo.Client, error) {
	all := append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.Dialer(dial),
		kgo.RequestTimeoutOverhead(5 * time.Second),
		kgo.RetryTimeout(10 * time.Second),
		kgo.MetadataMinAge(100 * time.Millisecond),
	}, opts...)
	return kgo.NewClient(all...)
}

// CheckBrokers compares the cluster's registered brokers with the inventory, dials each broker at
// its advertised listener, and counts offline and under-replicated partitions.
func CheckBrokers(ctx context.Context, cl *kgo.Client, want []Target) Brokers {
	r := Brokers{Controller: -1}
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	md, err := adm.Metadata(ctx)
	if err != nil {
		r.Problems = append(r.Problems, fmt.Sprintf("metadata: %v", err))
		for _, t := range want {
			r.Brokers = append(r.Brokers, Broker{Target: t, Err: err.Error()})
		}
		return r
	}
	r.Controller = md.Controller
	reg := map[int32]string{}
	for _, b := range md.Brokers {
		reg[b.NodeID] = b.Host + ":" + strconv.Itoa(int(b.Port))
	}
	reach := map[int32]error{}
	if vs, err := adm.ApiVersions(ctx); err == nil {
		for _, v := range vs {
			reach[v.NodeID] = v.Err
		}
	}
	for _, t := range want {
		b := Broker{Target: t}
		b.Advertised, b.Registered = reg[int32(t.ID)]
		b.Controller = int32(t.ID) == md.Controller
		if !b.Registered {
			b.Err = "not registered"
			r.Problems = append(r.Problems, fmt.Sprintf("broker %s (id %d) is not registered", t.Host, t.ID))
		} else if err, ok := reach[int32(t.ID)]; !ok || err != nil {
			if err == nil {
				err = errors.New("no answer")
			}
			b.Err = "advertised listener " + b.Advertised + ": " + err.Error()
			r.Problems = append(r.Problems, fmt.Sprintf("broker %s: %s", t.Host, b.Err))
		} else {
			b.Reachable = true
		}
		r.Brokers = append(r.Brokers, b)
	}
	if md.Controller < 0 {
		r.Problems = append(r.Problems, "no controller elected")
	}
	names := md.Topics.Names()
	sort.Strings(names)
	for _, name := range names {
		td := md.Topics[name]
		for _, p := range td.Partitions.Sorted() {
			r.Partitions++
			switch {
			case p.Leader < 0 || errors.Is(p.Err, kerr.LeaderNotAvailable):
				r.Offline++
				r.Problems = append(r.Problems, fmt.Sprintf("partition %s/%d is offline", name, p.Partition))
			case len(p.ISR) < len(p.Replicas):
				r.UnderReplicated++
				r.Problems = append(r.Problems, fmt.Sprintf("partition %s/%d is under-replicated (isr %v of replicas %v)", name, p.Partition, p.ISR, p.Replicas))
			}
		}
	}
	return r
}

// Canary is the produce/consume round trip.
type Canary struct {
	Produced int    `json:"produced"`
	Consumed int    `json:"consumed"`
	Latency  string `json:"latency"`
	Err      string `json:"error,omitempty"`
}

// RunCanary writes one acks=all record to every partition of the canary topic (creating it with
// one partition per broker and the cluster's replication) and reads each back by offset.
func RunCanary(ctx context.Context, dial Dialer, seeds []string, brokers int) Canary {
	var c Canary
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	fail := func(err error) Canary {
		c.Err = err.Error()
		c.Latency = time.Since(start).Round(time.Millisecond).String()
		return c
	}
	cl, err := Client(dial, seeds, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return fail(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rf := int16(min(3, brokers))
	if _, err := adm.CreateTopic(ctx, int32(max(1, brokers)), rf, nil, CanaryTopic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fail(fmt.Errorf("create %s: %w", CanaryTopic, err))
	}
	var parts []int32
	for i := 0; i < 50; i++ { // the topic's metadata needs a moment to reach every broker
		td, err := adm.ListTopics(ctx, CanaryTopic)
		if err == nil && td[CanaryTopic].Err == nil && len(td[CanaryTopic].Partitions) > 0 {
			parts = td[CanaryTopic].Partitions.Numbers()
			break
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if len(parts) == 0 {
		return fail(fmt.Errorf("topic %s has no partitions", CanaryTopic))
	}
	stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
	offsets := map[int32]int64{}
	for _, p := range parts {
		res := cl.ProduceSync(ctx, &kgo.Record{Topic: CanaryTopic, Partition: p, Value: []byte(stamp)})
		r, err := res.First()
		if err != nil {
			return fail(fmt.Errorf("produce to %s/%d: %w", CanaryTopic, p, err))
		}
		offsets[p] = r.Offset
		c.Produced++
	}
	consume := map[string]map[int32]kgo.Offset{CanaryTopic: {}}
	for p, o := range offsets {
		consume[CanaryTopic][p] = kgo.NewOffset().At(o)
	}
	rd, err := Client(dial, seeds, kgo.ConsumePartitions(consume))
	if err != nil {
		return fail(err)
	}
	defer rd.Close()
	seen := map[int32]bool{}
	for len(seen) < len(offsets) {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			return fail(fmt.Errorf("consumed %d of %d canary records: %w", len(seen), len(offsets), ctx.Err()))
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset == offsets[r.Partition] && string(r.Value) == stamp {
				seen[r.Partition] = true
			}
		})
	}
	c.Consumed = len(seen)
	c.Latency = time.Since(start).Round(time.Millisecond).String()
	return c
}
