// Command drover-broker: Kafka-wire-compatible broker.
//
// It reads a server.properties-syntax file, serves the Kafka protocol on
// the PLAINTEXT listener, registers with the coordinator when
// coordinator.connect (or zookeeper.connect) is set (single-node mode
// otherwise), signals systemd readiness, and shuts down gracefully on SIGTERM.
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
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/drover/drover/broker/cluster"
	"github.com/drover/drover/broker/kafka"
)

var version = "dev"

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("drover-broker", flag.ContinueOnError)
	showVersion := fs.Bool("version", false, "print the version and exit")
	configPath := fs.String("config", "/etc/drover/server.properties", "server.properties file")
	validate := fs.Bool("t", false, "validate the config file and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drover-broker [--config FILE] [-t] [--version]\n\ndrover-broker: Kafka-wire-compatible broker.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Println("drover-broker", version)
		return 0
	}
	props, err := kafka.ParseProperties(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drover-broker:", err)
		return 1
	}
	for _, w := range props.Warnings {
		fmt.Fprintln(os.Stderr, "drover-broker: warning:", w)
	}
	if *validate {
		fmt.Printf("drover-broker: %s: configuration OK (broker.id=%d, listener %s, log dir %s)\n", *configPath, props.Config.BrokerID, props.Config.Listen, props.Config.LogDir)
		return 0
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg := props.Config
	cfg.Logger = logger

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if len(props.CoordinatorEndpoints) > 0 {
		st, err := cluster.OpenCoord(ctx, props.CoordinatorEndpoints, cfg.BrokerID, logger)
		if err != nil {
			logger.Error("connect to coordinator", "endpoints", props.CoordinatorEndpoints, "err", err)
			return 1
		}
		if props.SessionTimeout > 0 {
			st.TTL = props.SessionTimeout
		}
		cfg.Store = st
	}
	srv, err := kafka.New(cfg)
	if err != nil {
		logger.Error("start", "err", err)
		return 1
	}
	if err := srv.Start(ctx); err != nil {
		logger.Error("start", "err", err)
		return 1
	}
	var admin *http.Server
	if props.AdminListen != "" {
		ln, err := net.Listen("tcp", props.AdminListen)
		if err != nil {
			logger.Error("admin listener", "addr", props.AdminListen, "err", err)
			srv.Stop()
			return 1
		}
		admin = &http.Server{Handler: srv.AdminHandler(), ReadHeaderTimeout: 5 * time.Second}
		go admin.Serve(ln)
		logger.Info("admin listening", "addr", ln.Addr().String())
	}
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		logger.Warn("sd_notify", "err", err)
	}
	logger.Info("drover-broker ready", "version", version, "broker.id", cfg.BrokerID, "addr", srv.Addr())

	var lost <-chan struct{}
	if d, ok := cfg.Store.(interface{ Lost() <-chan struct{} }); ok {
		lost = d.Lost()
	}
	code := 0
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case <-lost:
		logger.Error("lost coordinator registration; exiting so systemd restarts us")
		code = 1
	}
	daemon.SdNotify(false, daemon.SdNotifyStopping)
	if admin != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		admin.Shutdown(sctx)
		cancel()
	}
	if err := srv.Stop(); err != nil && !errors.Is(err, context.Canceled) {
		logger.Warn("stop", "err", err)
	}
	logger.Info("stopped")
	return code
}
