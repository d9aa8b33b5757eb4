// Command drover-coordinator: ZooKeeper-role coordinator on embedded etcd.
//
// It reads a zoo.cfg and dataDir/myid, serves the etcd client API and ZooKeeper's
// four-letter words on clientPort, /healthz and /metrics on admin.serverPort, tells systemd it
// is ready (Type=notify) once the member is in a cluster with a leader, and on SIGTERM hands
// leadership to another member before stopping.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/drover/drover/broker/coordinator"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("drover-coordinator", flag.ContinueOnError)
	showVersion := fs.Bool("version", false, "print the version and exit")
	cfgPath := fs.String("config", "/etc/drover/zoo.cfg", "zoo.cfg `file`; myid is read from its dataDir")
	check := fs.Bool("t", false, "validate the config (and dataDir/myid) and exit: 0 valid, 1 invalid")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drover-coordinator [--config FILE] [-t] [--version]\n\n"+
			"drover-coordinator: ZooKeeper-role coordinator on embedded etcd.\n\nflags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nexit status: 0 ok, 1 failure (or invalid config with -t), 2 usage,\n"+
			"78 invalid config or a data dir owned by another member/cluster (do not restart)\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "drover-coordinator: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *showVersion {
		fmt.Println("drover-coordinator", version)
		return 0
	}

	cfg, warns, err := coordinator.Load(*cfgPath)
	for _, w := range warns {
		fmt.Fprintf(os.Stderr, "warning: %s\n", w)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		if *check {
			return 1
		}
		return exitConfig
	}
	if *check {
		hb, el := cfg.Timing()
		fmt.Printf("%s: ok (myid %d, %d servers, heartbeat %v, election %v)\n", *cfgPath, cfg.MyID, max(1, len(cfg.Servers)), hb, el)
		return 0
	}

	// journald stamps each line, so no time; key=value stays greppable.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	slog.SetDefault(log)
	if err := serve(cfg, log); err != nil {
		log.Error("drover-coordinator failed", "err", err)
		if _, ok := errors.AsType[*coordinator.DataDirError](err); ok {
			return exitConfig
		}
		return 1
	}
	return 0
}

// exitConfig (EX_CONFIG) marks failures a restart cannot fix: a bad config, or a data dir
// that belongs to another member or cluster. Units set RestartPreventExitStatus=78.
const exitConfig = 78

func serve(cfg *coordinator.Config, log *slog.Logger) error {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	m, err := coordinator.Start(cfg, coordinator.Options{Logger: log, Version: version})
	if err != nil {
		return err
	}

	var admin *http.Server
	if cfg.AdminEnabled {
		addr := net.JoinHostPort(cfg.AdminAddress, strconv.Itoa(cfg.AdminPort))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			m.Stop()
			return fmt.Errorf("listen on admin port: %w", err)
		}
		admin = &http.Server{Handler: m.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
		go admin.Serve(ln)
		log.Info("admin server listening", "addr", ln.Addr().String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go notifyReady(ctx, m, cfg, log)

	var runErr error
	select {
	case sig := <-sigs:
		log.Info("stopping", "signal", sig.String(), "leader", m.IsLeader())
	case err := <-m.Err():
		runErr = fmt.Errorf("etcd: %w", err)
	}
	cancel()
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	start := time.Now()
	m.Stop()
	if admin != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		admin.Shutdown(sctx)
		scancel()
	}
	log.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return runErr
}

// notifyReady sends READY=1 only once the member is in a cluster with a leader: systemd then
// starts dependants (brokers) against a working ensemble, and a rolling restart moves on only
// when this member has really rejoined.
func notifyReady(ctx context.Context, m *coordinator.Member, cfg *coordinator.Config, log *slog.Logger) {
	// ZooKeeper gives followers initLimit ticks to sync; use it as the "still waiting" cadence.
	every := time.Duration(cfg.InitLimit) * cfg.TickTime
	for {
		wctx, cancel := context.WithTimeout(ctx, every)
		err := m.WaitReady(wctx)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("still waiting for the ensemble", "err", err)
		daemon.SdNotify(false, "STATUS=waiting for quorum")
	}
	mode := "follower"
	if m.IsLeader() {
		mode = "leader"
	}
	log.Info("member ready", "mode", mode)
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS=serving"); err != nil {
		log.Warn("sd_notify", "err", err)
	}
}
