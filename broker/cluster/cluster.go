// Package cluster holds topic and broker metadata: which brokers are
// registered, which topics exist (id, partitions, replica assignment,
// configs) and each partition's state (leader, leader epoch, ISR).
//
// Two stores implement it: Local (single-node mode, a JSON file in the log
// dir) and Coord (the drover coordinator, etcd, with Kafka's ZooKeeper key
// layout under a prefix). Both publish immutable Snapshots: readers take the
// current one without locks, writers replace it.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"hash/fnv"
	"sort"
)

// Errors the protocol layer maps to Kafka error codes.
var (
	ErrTopicExists       = errors.New("topic already exists")
	ErrUnknownTopic      = errors.New("unknown topic")
	ErrReplicationFactor = errors.New("replication factor larger than the number of brokers")
	ErrNotAvailable      = errors.New("metadata store not available")
	// ErrStaleState: a partition state compare-and-set lost (someone else
	// changed the state first; re-read the snapshot).
	ErrStaleState = errors.New("partition state changed concurrently")
)

// Broker is a registered broker.
type Broker struct {
	ID   int32  `json:"-"`
	Host string `json:"host"`
	Port int32  `json:"port"`
	Rack string `json:"rack,omitempty"`
	// Endpoints in Kafka's form, e.g. PLAINTEXT://host:9092.
	Endpoints []string `json:"endpoints"`
	Version   int      `json:"version"`
	Timestamp string   `json:"timestamp,omitempty"`
	// Incarnation identifies one registration of the broker (the store
	// revision of its registration): a restarted broker gets a new one, so
	// the controller can tell a bounce from a broker that never went away.
	Incarnation int64 `json:"-"`
}

// Partition is one partition's assignment and state.
type Partition struct {
	Index       int32
	Replicas    []int32 // assignment; Replicas[0] is the preferred leader
	Leader      int32   // -1 when offline
	LeaderEpoch int32
	ISR         []int32
	Version     int64 // store revision of the state, for compare-and-set by the controller
	// LeaderIncarnation is the leader's registration incarnation when it was
	// elected (0: not tracked, single-node mode). A restarted broker does not
	// act on a leadership granted to its previous incarnation.
	LeaderIncarnation int64
}

// PartitionState is what the controller and the leader write for a partition.
type PartitionState struct {
	Leader            int32
	LeaderEpoch       int32
	ISR               []int32
	LeaderIncarnation int64
}

// Topic is a topic's metadata.
type Topic struct {
	Name       string
	ID         [16]byte
	Partitions []Partition
	Configs    map[string]string // overrides only
}

// Snapshot is an immutable view of the cluster metadata.
type Snapshot struct {
	ClusterID  string
	Controller int32
	Brokers    []Broker // sorted by id
	Topics     map[string]*Topic
	// ShuttingDown lists registered brokers in controlled shutdown: they
	// lead nothing new, leave ISRs, and coordinate no groups.
	ShuttingDown map[int32]bool
}

// Live reports whether broker id is registered and not shutting down.
func (s *Snapshot) Live(id int32) bool {
	if s.ShuttingDown[id] {
		return false
	}
	_, ok := s.Broker(id)
	return ok
}

// LiveBrokers returns the ids of registered brokers not shutting down.
func (s *Snapshot) LiveBrokers() []int32 {
	var out []int32
	for _, b := range s.Brokers {
		if !s.ShuttingDown[b.ID] {
			out = append(out, b.ID)
		}
	}
	return out
}

// Broker returns the broker with id, if registered.
func (s *Snapshot) Broker(id int32) (Broker, bool) {
	for _, b := range s.Brokers {
		if b.ID == id {
			return b, true
		}
	}
	return Broker{}, false
}

// TopicByID finds a topic by its id.
func (s *Snapshot) TopicByID(id [16]byte) *Topic {
	for _, t := range s.Topics {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// GroupCoordinator picks the broker that coordinates a consumer group by
// rendezvous hashing over the live brokers: every broker with the same
// broker list answers FindCoordinator the same way, and a broker leaving
// moves only its own groups (a modulo hash would move most of them).
func (s *Snapshot) GroupCoordinator(group string) (Broker, bool) {
	var best Broker
	var bestW uint64
	found := false
	for _, b := range s.Brokers {
		if s.ShuttingDown[b.ID] {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(group))
		h.Write([]byte{0, byte(b.ID >> 24), byte(b.ID >> 16), byte(b.ID >> 8), byte(b.ID)})
		w := mix64(h.Sum64())
		if !found || w > bestW {
			best, bestW, found = b, w, true
		}
	}
	if !found && len(s.Brokers) > 0 {
		// Everybody is shutting down: keep answering.
		return s.Brokers[0], true
	}
	return best, found
}

// mix64 is a finalizer (splitmix64) so nearby inputs give unrelated weights.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Store is the metadata backend.
type Store interface {
	// Snapshot returns the current metadata.
	Snapshot() *Snapshot
	// Changed is closed (and replaced) whenever the snapshot changes.
	Changed() <-chan struct{}
	// Register announces this broker (ephemeral in the coordinator).
	Register(ctx context.Context, b Broker) error
	// CreateTopic assigns replicas over the registered brokers and stores the topic.
	CreateTopic(ctx context.Context, name string, partitions int32, rf int16, configs map[string]string) (*Topic, error)
	// DeleteTopic removes a topic.
	DeleteTopic(ctx context.Context, name string) error
	// AlterTopicConfig replaces a topic's config overrides.
	AlterTopicConfig(ctx context.Context, name string, configs map[string]string) error
	// AlterPartition is the leader's ISR change: it writes st only if the
	// partition state is still at version expect (ErrStaleState otherwise)
	// and returns the new version.
	AlterPartition(ctx context.Context, topic string, partition int32, st PartitionState, expect int64) (int64, error)
	// ProducerIDBlock reserves a block of producer ids and returns its first id and size.
	ProducerIDBlock(ctx context.Context) (int64, int64, error)
	// Close deregisters and releases resources.
	Close() error
}

// Assign spreads partitions over brokers round robin, like Kafka's
// rack-unaware assignment: partition p's replicas are brokers
// start+p, start+p+1, ... (mod n).
func Assign(brokers []int32, name string, partitions int32, rf int16) ([][]int32, error) {
	if int(rf) > len(brokers) || rf < 1 {
		return nil, ErrReplicationFactor
	}
	ids := append([]int32(nil), brokers...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	h := fnv.New32a()
	h.Write([]byte(name))
	start := int(h.Sum32() % uint32(len(ids)))
	out := make([][]int32, partitions)
	for p := range out {
		r := make([]int32, rf)
		for j := range r {
			r[j] = ids[(start+p+j)%len(ids)]
		}
		out[p] = r
	}
	return out, nil
}

// NewTopicID returns a random topic UUID (never the zero UUID).
func NewTopicID() [16]byte {
	var id [16]byte
	for id == ([16]byte{}) {
		rand.Read(id[:])
	}
	return id
}

// EncodeID renders a topic id as Kafka does in ZooKeeper (URL-safe base64, no padding).
func EncodeID(id [16]byte) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// DecodeID parses EncodeID's form.
func DecodeID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, errors.New("bad topic id")
	}
	copy(id[:], b)
	return id, nil
}

// NewClusterID returns a random cluster id in Kafka's form (22 base64 chars).
func NewClusterID() string { return EncodeID(NewTopicID()) }

func sortBrokers(bs []Broker) {
	sort.Slice(bs, func(i, j int) bool { return bs[i].ID < bs[j].ID })
}
