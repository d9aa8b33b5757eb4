package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
)

func init() {
	Register(&Command{Name: "health", Summary: "check quorum, brokers, partitions and a produce/consume canary", Run: runHealth})
}

func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	var f runFlags
	f.register(fs)
	noCanary := fs.Bool("no-canary", false, "skip the produce/consume canary")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drover health -i INVENTORY [--output table|json] [--no-canary] [--direct]\n\n"+
			"Healthy means: one coordinator leader that counts every other member as a synced follower;\n"+
			"every inventory broker registered and answering at its advertised listener; no offline or\n"+
			"under-replicated partition; and an acks=all record produced to and consumed from every broker.\n"+
			"Services are reached through the SSH connections unless --direct. Exit 0 only when healthy.\n\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	cr, err := loadCluster(&f.HostFlags, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "drover health: %v\n", err)
		return ExitFailed
	}
	defer cr.close()
	return printHealth(ctx, cr, cr.dialer(f.direct), !*noCanary, f.output, stdout)
}
