package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover/drover/provisioner/sshx"
)

func init() {
	Register(&Command{Name: "ping", Summary: "connect to every host over ssh, run a trivial command, check sudo", Run: runPing})
}

type pingResult struct {
	host, address, user string
	latency             time.Duration
	err                 error
}

func runPing(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	var hf HostFlags
	hf.Register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drover ping -i FILE [--limit P] [--ssh-config F] [--forks N] [--accept-new-host-keys] [--connect-timeout D]\n\n"+
			"Connects to every host, runs `true` (and `sudo -n true` when become is on) and prints a table.\n"+
			"Exit status: 0 all reached, 4 some host unreachable (network, auth or host key), 2 other failures.\n\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	_, hosts, err := hf.Load()
	if err != nil {
		fmt.Fprintf(stderr, "drover ping: %v\n", err)
		return ExitFailed
	}
	pool, err := hf.Pool(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "drover ping: %v\n", err)
		return ExitFailed
	}
	defer pool.Close()

	start := time.Now()
	results := make([]pingResult, len(hosts))
	pool.ForEach(ctx, len(hosts), func(ctx context.Context, i int) {
		h := hosts[i]
		t := sshx.TargetFor(h)
		r := pingResult{host: h.Name, address: h.Address, user: h.User}
		if ep, err := pool.Resolve(t); err == nil {
			r.address, r.user = ep.Addr(), ep.User
			if v := ep.Via(); v != "" {
				r.address += " via " + v
			}
		}
		t0 := time.Now()
		if h.Connection == "local" {
			r.err = errors.New("ansible_connection=local is not supported by ping")
			results[i] = r
			return
		}
		c, err := pool.Connect(ctx, t)
		if err == nil {
			// one session: `sudo -n true` proves the login and the sudo right together
			if c.NeedsSudo() {
				err = c.CheckSudo(ctx)
			} else {
				err = c.Run(ctx, "true", nil, nil, nil)
			}
		}
		r.latency = time.Since(t0)
		r.err = err
		results[i] = r
	})
	wall := time.Since(start)

	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tADDRESS\tUSER\tLATENCY\tRESULT")
	var ok, unreachable, failed int
	for _, r := range results {
		res := "ok"
		switch {
		case r.err == nil:
			ok++
		case sshx.IsUnreachable(r.err):
			unreachable++
			res = "UNREACHABLE: " + oneLine(r.err)
		default:
			failed++
			res = "FAILED: " + oneLine(r.err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.host, r.address, r.user, r.latency.Round(time.Millisecond), res)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%d hosts: ok=%d unreachable=%d failed=%d in %s\n", len(results), ok, unreachable, failed, wall.Round(time.Millisecond))
	switch {
	case unreachable > 0:
		return ExitUnreachable
	case failed > 0:
		return ExitFailed
	}
	return ExitOK
}

func oneLine(err error) string {
	s := err.Error()
	// The host name already heads the row.
	if i := strings.Index(s, ": "); i > 0 && !strings.Contains(s[:i], " ") {
		s = s[i+2:]
	}
	return strings.Join(strings.Fields(s), " ")
}
