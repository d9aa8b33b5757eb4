package kafka

// CreateTopics (key 19), v0-7.
//
// NumPartitions / ReplicationFactor of -1 (v4+) take num.partitions /
// default.replication.factor. Configs are checked against the per-topic
// keys drover honours (topics.go); unknown keys are INVALID_CONFIG as in
// Kafka. Manual replica assignment is refused (INVALID_REQUEST). v7 returns
// the new topic id; v5+ the effective configs.

import (
	"context"
	"errors"
	"sort"

	"github.com/drover/drover/broker/cluster"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(19, 0, 7, handleCreateTopics) }

func handleCreateTopics(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	seen := map[string]int{}
	for _, rt := range req.Topics {
		seen[rt.Topic]++
	}
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		fail := func(code int16, msg string) {
			st.ErrorCode = code
			if req.Version >= 1 && msg != "" {
				st.ErrorMessage = &msg
			}
		}
		parts, rf := rt.NumPartitions, rt.ReplicationFactor
		if parts == -1 {
			parts = s.cfg.NumPartitions
		}
		if rf == -1 {
			rf = s.cfg.DefaultReplicationFactor
		}
		configs := map[string]string{}
		var cfgErr error
		for _, c := range rt.Configs {
			if err := validateTopicConfig(c.Name, c.Value); err != nil && cfgErr == nil {
				cfgErr = err
			}
			if c.Value != nil {
				configs[c.Name] = *c.Value
			}
		}
		switch {
		case seen[rt.Topic] > 1:
			fail(kerr.InvalidRequest.Code, "duplicate topic in request")
		case checkTopicName(rt.Topic) != nil || rt.Topic == offsetsTopic:
			fail(kerr.InvalidTopicException.Code, "invalid topic name")
		case len(rt.ReplicaAssignment) > 0:
			fail(kerr.InvalidRequest.Code, "manual replica assignment is not supported")
		case parts <= 0:
			fail(kerr.InvalidPartitions.Code, "number of partitions must be positive")
		case rf <= 0 || int(rf) > len(s.store.Snapshot().LiveBrokers()):
			fail(kerr.InvalidReplicationFactor.Code, "replication factor larger than the number of brokers")
		case cfgErr != nil:
			fail(kerr.InvalidConfig.Code, cfgErr.Error())
		case s.store.Snapshot().Topics[rt.Topic] != nil:
			fail(kerr.TopicAlreadyExists.Code, "topic already exists")
		case req.ValidateOnly:
		default:
			t, err := s.createTopic(context.Background(), rt.Topic, parts, rf, configs)
			switch {
			case errors.Is(err, cluster.ErrTopicExists):
				fail(kerr.TopicAlreadyExists.Code, err.Error())
			case errors.Is(err, cluster.ErrReplicationFactor):
				fail(kerr.InvalidReplicationFactor.Code, err.Error())
			case err != nil:
				fail(kerr.UnknownServerError.Code, err.Error())
			default:
				st.TopicID = t.ID
			}
		}
		if st.ErrorCode == 0 {
			st.NumPartitions, st.ReplicationFactor = parts, rf
			eff := s.effectiveConfig(&cluster.Topic{Configs: configs})
			keys := make([]string, 0, len(eff))
			for k := range eff {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				c := kmsg.NewCreateTopicsResponseTopicConfig()
				c.Name = k
				v := eff[k]
				c.Value = &v
				c.Source = int8(kmsg.ConfigSourceDefaultConfig)
				if _, ok := configs[k]; ok {
					c.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
				}
				st.Configs = append(st.Configs, c)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
