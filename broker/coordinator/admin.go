package coordinator

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves /healthz and /metrics for the admin port.
//
// /healthz is 200 "ok" while the member is part of a cluster with a leader, else 503 with the
// reason, so a load balancer or the provisioner's health gate sees the same thing sd_notify
// readiness means. /metrics has etcd's own metrics (process-wide registry) plus drover_* ones
// for this member.
func (m *Member) AdminHandler() http.Handler {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge("drover_coordinator_is_leader", "1 if this member leads the ensemble.", func() float64 { return b2f(m.IsLeader()) })
	gauge("drover_coordinator_serving", "1 if this member is in a cluster with a leader.", func() float64 {
		ok, _ := m.Serving()
		return b2f(ok)
	})
	gauge("drover_coordinator_myid", "This member's myid.", func() float64 { return float64(m.cfg.MyID) })
	gauge("drover_coordinator_client_connections", "Open proxied client connections.", func() float64 { return float64(m.connCount()) })
	gauge("drover_coordinator_quorum_size", "Voting members in the ensemble.", func() float64 { return float64(m.votingMembers()) })
	gauge("drover_coordinator_applied_index", "Raft applied index (the Zxid of srvr).", func() float64 { return float64(m.etcd.Server.AppliedIndex()) })
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "drover_coordinator_client_connections_total", Help: "Connections accepted on the client port.",
	}, func() float64 { return float64(m.accepted.Load()) }))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ok, why := m.Serving(); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(why + "\n"))
			return
		}
		w.Write([]byte("ok"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{prometheus.DefaultGatherer, reg}, promhttp.HandlerOpts{}))
	return mux
}
