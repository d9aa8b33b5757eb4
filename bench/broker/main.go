// Command broker measures Kafka produce/consume throughput and produce latency of drover-broker
// next to franz-go's in-memory kfake and a null sink, all driven by the same franz-go client in
// the same run. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drover/drover/bench/internal/results"
)

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

type config struct {
	runs       int
	records    int
	size       int
	partitions []int
	latRate    int
	latDur     time.Duration
	timeout    time.Duration

	clusterDesc        string // how the drover-3brokers target was obtained
	loadStart, loadEnd string
}

func main() {
	var (
		cfg         config
		targetsArg  = flag.String("targets", "kfake,null,drover", "comma-separated targets: kfake, null, drover (the 3-broker cluster is added unless -no-cluster)")
		partsArg    = flag.String("partitions", "1,8", "comma-separated partition counts")
		binDir      = flag.String("bin-dir", "bin", "directory with drover-broker and drover-coordinator (built by `make build`)")
		brokerBin   = flag.String("broker-bin", "", "drover-broker binary (default: -bin-dir/drover-broker)")
		brokerArgs  = flag.String("broker-args", "--config {config}", "drover-broker arguments for the single broker; {config} is the generated server.properties")
		brokerWait  = flag.Duration("broker-wait", 20*time.Second, "how long to wait for drover-broker to listen")
		noCluster   = flag.Bool("no-cluster", false, "skip the 3-coordinator + 3-broker cluster (acks=all RF=3); a quick run, written to -out only if -out is given")
		clusterWait = flag.Duration("cluster-wait", 60*time.Second, "how long to wait for the local cluster's brokers to register")
		cluster     = flag.String("cluster", "", "seeds host:port,... of an already running 3-broker drover cluster, measured instead of starting one")
		out         = flag.String("out", "bench/RESULTS.md", "markdown file whose \"Broker\" section is replaced (empty: stdout only)")
	)
	flag.IntVar(&cfg.runs, "runs", 3, "runs per target and scenario (the table shows medians)")
	flag.IntVar(&cfg.records, "records", 200000, "records per throughput run")
	flag.IntVar(&cfg.size, "size", 1024, "record value size in bytes")
	flag.IntVar(&cfg.latRate, "lat-rate", 2000, "records/s offered in the latency runs")
	flag.DurationVar(&cfg.latDur, "lat-dur", 3*time.Second, "duration of each latency run")
	flag.DurationVar(&cfg.timeout, "timeout", 3*time.Minute, "limit for one measurement")
	flag.Parse()
	for _, s := range strings.Split(*partsArg, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || p < 1 {
			fmt.Fprintf(os.Stderr, "bad -partitions %q\n", *partsArg)
			os.Exit(2)
		}
		cfg.partitions = append(cfg.partitions, p)
	}
	if cfg.runs < 1 || cfg.records < 1 || cfg.latRate < 1 {
		fmt.Fprintln(os.Stderr, "-runs, -records and -lat-rate must be positive")
		os.Exit(2)
	}
	if *brokerBin == "" {
		*brokerBin = filepath.Join(*binDir, "drover-broker")
	}
	var targets []*target
	full := 0 // of the default targets
	for _, id := range strings.Split(*targetsArg, ",") {
		switch strings.TrimSpace(id) {
		case "kfake":
			targets = append(targets, kfakeTarget())
			full++
		case "null":
			targets = append(targets, nullTarget())
			full++
		case "drover":
			targets = append(targets, droverTarget(*brokerBin, *brokerArgs, *brokerWait))
			full++
		case "":
		default:
			fmt.Fprintf(os.Stderr, "unknown target %q\n", id)
			os.Exit(2)
		}
	}
	switch {
	case *cluster != "":
		targets = append(targets, clusterTarget(strings.Split(*cluster, ",")))
		cfg.clusterDesc = "an external 3-broker drover cluster (-cluster " + *cluster + ")"
	case !*noCluster:
		targets = append(targets, localClusterTarget(filepath.Join(*binDir, "drover-coordinator"), *brokerBin, *clusterWait))
		cfg.clusterDesc = "3 drover-coordinator + 3 drover-broker subprocesses started by the bench, fresh for every measurement"
	}
	// A partial run must not replace a complete section unless asked to.
	explicitOut := false
	flag.Visit(func(f *flag.Flag) { explicitOut = explicitOut || f.Name == "out" })
	if (*noCluster || full != 3) && !explicitOut {
		logf("partial run (-no-cluster or -targets): printed only; give -out to write it")
		*out = ""
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st := newStore()
	cfg.loadStart = loadAvg()
	run(ctx, cfg, targets, st)
	cfg.loadEnd = loadAvg()
	interrupted := ctx.Err() != nil

	body := report(cfg, targets, st)
	fmt.Println("## Broker")
	fmt.Println()
	fmt.Print(body)
	if interrupted {
		logf("interrupted: %s not written", *out)
		os.Exit(130)
	}
	if *out != "" {
		if err := results.MergeSection(*out, "Broker", body); err != nil {
			logf("%v", err)
			os.Exit(1)
		}
		logf("wrote the Broker section of %s", *out)
	}
}

// run alternates the targets inside every run (rotating who goes first) so slow drift on a shared
// machine hits all of them alike; ratios are then taken run by run.
func run(ctx context.Context, cfg config, targets []*target, st *store) {
	value := payload(cfg.size)
	latP := cfg.partitions[0]
	for _, p := range cfg.partitions {
		if p == 1 {
			latP = 1
		}
	}
	suffix := strconv.FormatInt(time.Now().Unix()%100000, 10)
	for r := 0; r < cfg.runs; r++ {
		for _, p := range cfg.partitions {
			for i := range targets {
				if ctx.Err() != nil {
					return
				}
				t := targets[(i+r)%len(targets)]
				if t.unavailable != nil {
					continue
				}
				measure(ctx, cfg, t, st, r, p, p == latP, value, suffix)
			}
		}
	}
}

func measure(ctx context.Context, cfg config, t *target, st *store, r, p int, withLatency bool, value []byte, suffix string) {
	in, err := t.start(ctx, p)
	if err != nil {
		if ctx.Err() == nil {
			t.unavailable = err
			fmt.Printf("%s unavailable: %v\n", t.name, err)
		}
		return
	}
	defer in.Close()
	failed := func(scn string, err error) {
		if ctx.Err() == nil {
			logf("run %d %s %s failed: %v", r+1, t.name, scn, err)
			st.fail(t.name, scn, err)
		}
	}
	mctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	topic := fmt.Sprintf("bench-%s-r%d-p%d", suffix, r, p)
	scn := fmt.Sprintf("produce acks=1 p=%d", p)
	if in.replicated {
		scn = fmt.Sprintf("produce acks=all RF=%d p=%d", in.createRF, p)
	}
	if err := in.createTopic(mctx, topic, p); err != nil {
		failed(scn, err)
		return
	}
	tp, err := produceThroughput(mctx, in.seeds, topic, cfg.records, value, in.replicated, newSampler(in.pids, in.logDir))
	if err != nil {
		failed(scn, err)
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			// A target that cannot finish a produce run in -timeout would only burn the
			// same time in every later run.
			t.unavailable = fmt.Errorf("skipped after a produce run timed out (-timeout %s): %w", cfg.timeout, err)
			fmt.Printf("%s unavailable: %v\n", t.name, t.unavailable)
		}
		return
	}
	st.addThr(t.name, scn, r, tp)
	line := fmt.Sprintf("run %d/%d p=%d %-16s produce %7.1f MB/s", r+1, cfg.runs, p, t.name, tp.mbPerSec())
	if in.consume {
		scn := fmt.Sprintf("consume p=%d", p)
		if in.replicated {
			scn = fmt.Sprintf("consume RF=%d p=%d", in.createRF, p)
		}
		cctx, ccancel := context.WithTimeout(ctx, cfg.timeout)
		// +1: the warm-up record is in the topic too.
		tc, err := consumeThroughput(cctx, in.seeds, topic, cfg.records+1)
		ccancel()
		if err != nil {
			failed(scn, err)
		} else {
			st.addThr(t.name, scn, r, tc)
			line += fmt.Sprintf("  consume %7.1f MB/s", tc.mbPerSec())
		}
	}
	if withLatency {
		modes := []bool{false, true}
		if in.replicated {
			modes = []bool{true} // the cluster's figure is acks=all
		}
		for _, all := range modes {
			scn := "latency acks=1"
			if all {
				scn = "latency acks=all"
			}
			if in.replicated {
				scn = fmt.Sprintf("latency acks=all RF=%d", in.createRF)
			}
			lt := fmt.Sprintf("lat-%s-r%d-%v", suffix, r, all)
			lctx, lcancel := context.WithTimeout(ctx, cfg.timeout)
			err := in.createTopic(lctx, lt, p)
			var l latency
			if err == nil {
				l, err = produceLatency(lctx, in.seeds, lt, value, all, cfg.latRate, cfg.latDur)
			}
			lcancel()
			if err != nil {
				failed(scn, err)
				continue
			}
			st.addLat(t.name, scn, r, l)
			line += fmt.Sprintf("  %s p50 %s p99 %s", scn, fmtMs(l.p50), fmtMs(l.p99))
		}
	}
	logf("%s", line)
}
