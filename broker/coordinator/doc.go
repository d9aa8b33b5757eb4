// Package coordinator runs one member of drover's coordination ensemble: an embedded etcd
// member (go.etcd.io/etcd/server/v3/embed) configured and observed the way operators know
// ZooKeeper, with a zoo.cfg, a dataDir/myid, server.N lines and four-letter words.
//
// # Config (zoo.cfg)
//
// "key=value" lines; '#' and '!' start comments. Malformed lines, bad values and duplicate
// keys are errors reported as "FILE:LINE: problem" (all of them, not just the first); unknown
// keys are warnings. Real ZooKeeper keys with no meaning here (maxClientCnxns,
// minSessionTimeout, ...) are accepted silently so an existing zoo.cfg validates.
//
//	zoo.cfg key                      etcd / drover
//	dataDir                          marker + myid live here; etcd data in dataDir/etcd
//	dataLogDir                       etcd WAL in dataLogDir/etcd-wal
//	myid (file dataDir/myid)         member name "zk<myid>"
//	server.N=host:peer:election[;[chost:]cport]
//	                                 InitialCluster "zkN=http://host:peer" (also the member's
//	                                 AdvertisePeerUrls, built by the same function so they
//	                                 match byte for byte); peer listener on host:peer, or
//	                                 0.0.0.0:peer when host is a name. The election port is
//	                                 accepted and unused: raft elects over the peer port.
//	                                 ":participant" is accepted, ":observer" rejected.
//	clientPort, clientPortAddress    the public client port (default 2181): etcd gRPC + 4lw
//	tickTime, syncLimit              heartbeat and election timeout, see below
//	initLimit                        initLimit*tickTime: how often a member waiting for quorum logs
//	autopurge.snapRetainCount        MaxSnapFiles and MaxWalFiles (default 3)
//	autopurge.purgeInterval          auto-compaction retention in hours (0 or absent: 1 h)
//	admin.enableServer               serve /healthz and /metrics (default true)
//	admin.serverAddress, .serverPort admin address; port default 7070 (ZooKeeper: 8080)
//	4lw.commands.whitelist           allowed words, default "*" (all drover implements)
//	drover.clusterToken              etcd initial cluster token (default derived, see below)
//	drover.heartbeatMs, .electionMs  override the derived timings
//
// A config without server lines is standalone: one member, peer URL http://127.0.0.1:2888,
// myid optional (default 1).
//
// # Timing
//
// ZooKeeper's defaults (tickTime=2000, syncLimit=5) allow a follower 10 s out of contact; raft
// with those numbers would take seconds to replace a dead leader. drover targets a LAN, where
// a leader loss should be repaired in well under 1.5 s, so:
//
//	heartbeat (TickMs)    = tickTime / 40, clamped to 10 ms .. 1 s   (2000 -> 50 ms)
//	election (ElectionMs) = heartbeat * 2 * syncLimit, at least 5 heartbeats (5 -> 500 ms)
//
// A follower campaigns after a randomised [election, 2*election) of silence, so a killed
// leader is replaced after 0.5-1 s plus one vote round trip (pre-vote on). The minimum lease
// TTL etcd grants is ceil(1.5 * election) = 1 s. For WAN ensembles raise tickTime (or set
// drover.heartbeatMs / drover.electionMs directly).
//
// # Client port
//
// etcd listens for clients on a private loopback port. The public clientPort is drover's own
// listener: it reads the first four bytes of each connection; a four-letter word is answered
// and the connection closed, as ZooKeeper does; anything else (the gRPC preface "PRI ", an
// HTTP request for etcd's /health) is spliced through to etcd unchanged. Implemented: ruok
// (-> "imok", no newline), srvr, stat, mntr, isro, conf, in ZooKeeper 3.8's formats, filled
// from etcd's state: Mode leader/follower/standalone from raft, Zxid = raft applied index,
// Node count = key count, zk_ephemerals_count = keys bound to a lease, zk_synced_followers =
// peers with a live raft stream. Latency and watch counts are reported as 0. ZooKeeper's other
// words get its "not in the whitelist" reply.
//
// # Data dir safety
//
// On first start the member writes dataDir/drover-coordinator.json with its myid and cluster
// token before etcd creates anything. Later starts refuse, with a message saying why, when
// myid or the token differ, when etcd data exists without a marker, or when dataDir holds
// Apache ZooKeeper data (version-2/). The token is drover.clusterToken or, by default,
// "drover-" + a hash of the server list, so pointing a member at another ensemble's data is
// caught; an intentional server-list edit needs drover.clusterToken set to the old token.
// Nothing here ever deletes data. A restarted member has a WAL and etcd rebuilds membership
// from it, ignoring InitialCluster, so "new" cluster state is right for first start and
// restart alike. Auto-compaction is always on (periodic); without it history grows until
// etcd's backend quota alarm stops all writes.
//
// # Lifecycle
//
// Start returns once etcd runs; WaitReady/Serving say when the member is in a cluster with a
// leader (what sd_notify READY=1 and /healthz mean). Stop first moves leadership to the
// best-connected member when this one leads (etcd MoveLeader), so a rolling restart costs a
// leader handover of a few heartbeats instead of an election timeout. The transfer is given
// max(4 elections, 1 s); if the other members are stopping too (a fleet shutdown) the member
// stops without it rather than waiting etcd's 6 s request timeout. Kill simulates a crash.
//
// Measured on loopback (2 shared cores): leader killed -> new leader 0.5-1.01 s (median
// ~0.87 s over 10 runs); graceful stop of the leader -> longest gap between successful writes
// 4-23 ms; an ephemeral key with a 2 s TTL is gone ~2.4 s after its client died (TTL plus
// etcd's 500 ms lease-expiry sweep).
package coordinator
