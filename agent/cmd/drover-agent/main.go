// Command drover-agent: node-side executor: reads a JSON task list on stdin, streams JSON events on stdout.
//
//	drover-agent [apply]              read a protocol.Request on stdin, write protocol.Event lines
//	drover-agent has HASH...          print the given sha256s the store already holds, one a line
//	drover-agent put --sha256 HASH    store stdin (--compress gzip|zstd|none) as the artifact HASH
//	drover-agent facts                print the node's facts as JSON
//	drover-agent --protocol           print the protocol version
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/drover/drover/agent/protocol"
	"github.com/drover/drover/agent/tasks"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drover-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	showProtocol := fs.Bool("protocol", false, "print the protocol version and exit")
	root := fs.String("root", "", "rewrite every node path under `DIR` (tests)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: drover-agent [flags] [apply | has HASH... | put --sha256 HASH | facts]

drover-agent: node-side executor: reads a JSON task list on stdin, streams JSON events on stdout.

  apply (default)   read a task list (JSON) on stdin, write one JSON event per line on stdout
  has HASH...       print which of the sha256s the artifact store holds
  put --sha256 H    store stdin as artifact H (temp file, verify, chmod, rename)
  facts             print this node's facts as JSON

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case *showVersion:
		fmt.Fprintln(stdout, "drover-agent", version)
		return 0
	case *showProtocol:
		fmt.Fprintln(stdout, protocol.ProtocolVersion)
		return 0
	}
	store := filepath.Join(*root, protocol.StoreDir)

	// Cancel on SIGTERM/SIGHUP/SIGINT (the SSH session went away): the task in flight finishes
	// its atomic step and the run stops. Notifying SIGPIPE turns a write to a closed stdout into
	// an EPIPE error instead of killing the process mid-task.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT)
	defer stop()
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	rest := fs.Args()
	cmd := "apply"
	if len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "apply":
		return apply(ctx, *root, stdin, stdout, stderr)
	case "has":
		have, err := tasks.Has(store, rest)
		if err != nil {
			fmt.Fprintln(stderr, "drover-agent has:", err)
			return 2
		}
		for _, h := range have {
			fmt.Fprintln(stdout, h)
		}
		return 0
	case "put":
		pfs := flag.NewFlagSet("put", flag.ContinueOnError)
		pfs.SetOutput(stderr)
		hash := pfs.String("sha256", "", "expected sha256 of the uncompressed bytes")
		comp := pfs.String("compress", "none", "stdin compression: none, gzip or zstd")
		mode := pfs.String("mode", "0755", "file mode")
		if err := pfs.Parse(rest); err != nil {
			return 2
		}
		var m uint32
		if _, err := fmt.Sscanf(*mode, "%o", &m); err != nil {
			fmt.Fprintln(stderr, "drover-agent put: bad --mode", *mode)
			return 2
		}
		if err := tasks.Put(store, *hash, *comp, os.FileMode(m&0777), stdin); err != nil {
			fmt.Fprintln(stderr, "drover-agent put:", err)
			return 1
		}
		return 0
	case "facts":
		f := tasks.Gather(ctx, *root, false)
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(f); err != nil {
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "drover-agent: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
}

func apply(ctx context.Context, root string, stdin io.Reader, stdout, stderr io.Writer) int {
	var req protocol.Request
	dec := json.NewDecoder(stdin)
	if err := dec.Decode(&req); err != nil {
		fmt.Fprintln(stderr, "drover-agent: read request:", err)
		_ = json.NewEncoder(stdout).Encode(protocol.Event{Status: protocol.StatusFailed, Err: "read request: " + err.Error()})
		return 2
	}
	if root != "" && req.Root == "" {
		req.Root = root
	}
	env := tasks.NewEnv(req)
	enc := json.NewEncoder(stdout)
	sum := tasks.Run(ctx, req, env, func(ev protocol.Event) error { return enc.Encode(ev) })
	sum.Version = version
	_ = enc.Encode(protocol.Event{Status: protocol.StatusDone, Summary: &sum})
	if sum.Failed > 0 {
		return 1
	}
	return 0
}
