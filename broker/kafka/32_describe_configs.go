package kafka

// DescribeConfigs (key 32), v0-4, for topics (type 2) and brokers (type 4).
// Topic answers list every config drover honours with its source (topic
// override or default); broker answers list the broker settings in use.

import (
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(32, 0, 4, handleDescribeConfigs) }

func handleDescribeConfigs(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	snap := s.topics.snapshot()
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var values map[string]string
		overrides := map[string]string{}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t := snap.Topics[rr.ResourceName]
			if t == nil {
				sr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			values = s.effectiveConfig(t)
			overrides = t.Configs
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(s.cfg.BrokerID)) {
				sr.ErrorCode = kerr.InvalidRequest.Code
				break
			}
			values = s.brokerConfigs()
			overrides = values
		default:
			sr.ErrorCode = kerr.InvalidRequest.Code
		}
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		want := map[string]bool{}
		for _, n := range rr.ConfigNames {
			want[n] = true
		}
		for _, k := range keys {
			if rr.ConfigNames != nil && !want[k] {
				continue
			}
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name = k
			v := values[k]
			c.Value = &v
			_, over := overrides[k]
			c.IsDefault = !over
			switch {
			case rr.ResourceType == kmsg.ConfigResourceTypeBroker:
				c.Source = kmsg.ConfigSourceStaticBrokerConfig
				c.ReadOnly = true
			case over:
				c.Source = kmsg.ConfigSourceDynamicTopicConfig
			default:
				c.Source = kmsg.ConfigSourceDefaultConfig
			}
			c.ConfigType = kmsg.ConfigTypeString
			sr.Configs = append(sr.Configs, c)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return resp
}

func (s *Server) brokerConfigs() map[string]string {
	c := &s.cfg
	return map[string]string{
		"broker.id":                  strconv.Itoa(int(c.BrokerID)),
		"log.dirs":                   c.LogDir,
		"num.partitions":             strconv.Itoa(int(c.NumPartitions)),
		"default.replication.factor": strconv.Itoa(int(c.DefaultReplicationFactor)),
		"min.insync.replicas":        strconv.Itoa(c.MinInsyncReplicas),
		"auto.create.topics.enable":  strconv.FormatBool(*c.AutoCreateTopics),
		"log.retention.ms":           strconv.FormatInt(c.LogRetentionMs, 10),
		"log.retention.bytes":        strconv.FormatInt(c.LogRetentionBytes, 10),
		"log.segment.bytes":          strconv.FormatInt(c.LogSegmentBytes, 10),
		"message.max.bytes":          strconv.Itoa(int(c.MessageMaxBytes)),
		"socket.request.max.bytes":   strconv.Itoa(int(c.MaxRequestBytes)),
	}
}
