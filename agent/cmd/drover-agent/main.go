// Command drover-agent: node-side executor: reads a JSON task list on stdin, streams JSON events on stdout.
package main

import (
	"flag"
	"fmt"
	"os"
)

var version = "dev"

func main() {
	fs := flag.NewFlagSet("drover-agent", flag.ContinueOnError)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drover-agent [flags]\n\ndrover-agent: node-side executor: reads a JSON task list on stdin, streams JSON events on stdout.\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println("drover-agent", version)
		return
	}
	fs.Usage()
	os.Exit(2)
}
