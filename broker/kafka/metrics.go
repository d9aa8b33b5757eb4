package kafka

import (
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kmsg"
)

type metrics struct {
	bytesIn     atomic.Int64
	bytesOut    atomic.Int64
	connections atomic.Int64
	requests    [128]atomic.Int64
	produced    atomic.Int64 // records appended
	fetchedB    atomic.Int64 // record bytes served
}

func (m *metrics) countRequest(key int16) {
	if key >= 0 && int(key) < len(m.requests) {
		m.requests[key].Add(1)
	}
}

// WriteMetrics writes Prometheus text exposition.
func (s *Server) WriteMetrics(w io.Writer) {
	m := &s.metrics
	fmt.Fprintf(w, "# HELP drover_broker_bytes_in_total Bytes received from clients.\n# TYPE drover_broker_bytes_in_total counter\ndrover_broker_bytes_in_total %d\n", m.bytesIn.Load())
	fmt.Fprintf(w, "# HELP drover_broker_bytes_out_total Bytes sent to clients.\n# TYPE drover_broker_bytes_out_total counter\ndrover_broker_bytes_out_total %d\n", m.bytesOut.Load())
	fmt.Fprintf(w, "# HELP drover_broker_connections Open client connections.\n# TYPE drover_broker_connections gauge\ndrover_broker_connections %d\n", m.connections.Load())
	fmt.Fprintf(w, "# HELP drover_broker_records_in_total Records appended by produce.\n# TYPE drover_broker_records_in_total counter\ndrover_broker_records_in_total %d\n", m.produced.Load())
	fmt.Fprintf(w, "# HELP drover_broker_requests_total Requests handled, by API.\n# TYPE drover_broker_requests_total counter\n")
	for k := range m.requests {
		if n := m.requests[k].Load(); n > 0 {
			name := kmsg.NameForKey(int16(k))
			fmt.Fprintf(w, "drover_broker_requests_total{api=%q,key=\"%d\"} %d\n", name, k, n)
		}
	}
	parts, led, urp, offline, curp := s.topics.counts()
	fmt.Fprintf(w, "# HELP drover_broker_partitions Partitions with a replica on this broker.\n# TYPE drover_broker_partitions gauge\ndrover_broker_partitions %d\n", parts)
	fmt.Fprintf(w, "# HELP drover_broker_leader_partitions Partitions this broker leads.\n# TYPE drover_broker_leader_partitions gauge\ndrover_broker_leader_partitions %d\n", led)
	fmt.Fprintf(w, "# HELP drover_broker_under_replicated_partitions Led partitions whose ISR is smaller than the replica set.\n# TYPE drover_broker_under_replicated_partitions gauge\ndrover_broker_under_replicated_partitions %d\n", urp)
	fmt.Fprintf(w, "# HELP drover_broker_offline_partitions Partitions (cluster-wide) without a live leader.\n# TYPE drover_broker_offline_partitions gauge\ndrover_broker_offline_partitions %d\n", offline)
	fmt.Fprintf(w, "# HELP drover_cluster_under_replicated_partitions Partitions (cluster-wide) whose ISR is smaller than the replica set.\n# TYPE drover_cluster_under_replicated_partitions gauge\ndrover_cluster_under_replicated_partitions %d\n", curp)
	ctl := s.store.Snapshot().Controller
	isCtl := 0
	if ctl == s.cfg.BrokerID {
		isCtl = 1
	}
	fmt.Fprintf(w, "# HELP drover_broker_active_controller 1 if this broker is the controller.\n# TYPE drover_broker_active_controller gauge\ndrover_broker_active_controller %d\n", isCtl)
	fmt.Fprintf(w, "# HELP drover_broker_groups Consumer groups coordinated here.\n# TYPE drover_broker_groups gauge\ndrover_broker_groups %d\n", s.groups.count())
}

// AdminHandler serves /healthz and /metrics.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if s.isClosing() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	// Profiles on the admin port (not the Kafka port).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		s.WriteMetrics(w)
	})
	return mux
}
