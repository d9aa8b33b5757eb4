// Command drover: provision Kafka-style clusters over SSH. The commands live in provisioner/cli.
package main

import (
	"os"

	"github.com/drover/drover/provisioner/cli"
)

var version = "dev"

func main() {
	cli.Version = version
	os.Exit(cli.Main(os.Args[1:]))
}
