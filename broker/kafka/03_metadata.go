package kafka

// Metadata (key 3), v0-12.
//
// Lists every registered broker. v10+ carries topic ids, assigned at topic
// creation and stable for the topic's life. Unknown topics are created when
// auto.create.topics.enable is set and the request allows it (always for
// v0-3), and returned at once (the local replicas exist before we answer).
// __consumer_offsets is listed as an internal topic (kgo's suite and admin
// tools expect it); group offsets are not stored in it (see groups_store.go).

import (
	"context"
	"errors"

	"github.com/drover/drover/broker/cluster"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const offsetsTopic = "__consumer_offsets"

var offsetsTopicID = [16]byte{'d', 'r', 'o', 'v', 'e', 'r', '-', 'o', 'f', 'f', 's', 'e', 't', 's', 0, 1}

func init() { register(3, 0, 12, handleMetadata) }

func handleMetadata(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	snap := s.topics.snapshot()
	for _, b := range snap.Brokers {
		rb := kmsg.NewMetadataResponseBroker()
		rb.NodeID, rb.Host, rb.Port = b.ID, b.Host, b.Port
		if b.Rack != "" {
			rack := b.Rack
			rb.Rack = &rack
		}
		resp.Brokers = append(resp.Brokers, rb)
	}
	cid := snap.ClusterID
	resp.ClusterID = &cid
	resp.ControllerID = snap.Controller
	if resp.ControllerID < 0 && len(snap.Brokers) > 0 {
		resp.ControllerID = snap.Brokers[0].ID
	}
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range snap.Topics {
			resp.Topics = append(resp.Topics, topicMetadata(snap, t))
		}
		resp.Topics = append(resp.Topics, offsetsTopicMetadata(snap))
		return resp
	}
	allowCreate := *s.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	for _, rt := range req.Topics {
		if rt.Topic == nil || *rt.Topic == "" {
			t := snap.TopicByID(rt.TopicID)
			if t == nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.TopicID = rt.TopicID
				mt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			resp.Topics = append(resp.Topics, topicMetadata(snap, t))
			continue
		}
		name := *rt.Topic
		if name == offsetsTopic {
			resp.Topics = append(resp.Topics, offsetsTopicMetadata(snap))
			continue
		}
		t := snap.Topics[name]
		if t == nil && allowCreate {
			if err := checkTopicName(name); err != nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic = rt.Topic
				mt.ErrorCode = kerr.InvalidTopicException.Code
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			rf := s.cfg.DefaultReplicationFactor
			var err error
			t, err = s.createTopic(context.Background(), name, s.cfg.NumPartitions, rf, nil)
			if errors.Is(err, cluster.ErrTopicExists) {
				t = s.store.Snapshot().Topics[name]
			} else if err != nil {
				s.log.Warn("auto-create topic", "topic", name, "err", err)
			}
			snap = s.store.Snapshot()
		}
		if t == nil {
			mt := kmsg.NewMetadataResponseTopic()
			mt.Topic = rt.Topic
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			resp.Topics = append(resp.Topics, mt)
			continue
		}
		resp.Topics = append(resp.Topics, topicMetadata(snap, t))
	}
	return resp
}

func topicMetadata(snap *cluster.Snapshot, t *cluster.Topic) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	for _, pm := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = pm.Index
		mp.Leader = pm.Leader
		mp.LeaderEpoch = pm.LeaderEpoch
		mp.Replicas = pm.Replicas
		mp.ISR = pm.ISR
		for _, r := range pm.Replicas {
			if _, ok := snap.Broker(r); !ok {
				mp.OfflineReplicas = append(mp.OfflineReplicas, r)
			}
		}
		if _, ok := snap.Broker(pm.Leader); !ok {
			mp.ErrorCode = kerr.LeaderNotAvailable.Code
			mp.Leader = -1
		}
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}

func offsetsTopicMetadata(snap *cluster.Snapshot) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := offsetsTopic
	mt.Topic = &name
	mt.TopicID = offsetsTopicID
	mt.IsInternal = true
	mp := kmsg.NewMetadataResponseTopicPartition()
	mp.Partition = 0
	mp.Leader = -1
	if len(snap.Brokers) > 0 {
		mp.Leader = snap.Brokers[0].ID
		mp.Replicas = []int32{mp.Leader}
		mp.ISR = []int32{mp.Leader}
	}
	mt.Partitions = append(mt.Partitions, mp)
	return mt
}
