// Package cli implements drover's subcommands. Each command registers itself from its own
// file's init with Register; Main dispatches.
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/drover/drover/provisioner/inventory"
	"github.com/drover/drover/provisioner/sshx"
)

// Version is stamped by main (which gets it from -ldflags "-X main.version=...").
var Version = "dev"

// Exit codes users script against (Ansible's).
const (
	ExitOK          = 0
	ExitFailed      = 2 // a host failed, or bad usage
	ExitUnreachable = 4 // a host could not be reached
)

// Command is one subcommand. Run gets the arguments after the command name and returns the
// process exit code.
type Command struct {
	Name    string
	Summary string
	Run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

var commands = map[string]*Command{}

// Register adds a subcommand; it panics on a duplicate name (a programming error).
func Register(c *Command) {
	if _, dup := commands[c.Name]; dup {
		panic("cli: duplicate command " + c.Name)
	}
	commands[c.Name] = c
}

// Commands lists the registered commands by name.
func Commands() []*Command {
	out := make([]*Command, 0, len(commands))
	for _, c := range commands {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: drover <command> [flags]\n\ndrover provisions Kafka-style clusters over SSH.\n\ncommands:\n")
	for _, c := range Commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nRun \"drover <command> -h\" for a command's flags; \"drover --version\" prints the version.\n")
}

// Main runs drover with os.Args[1:]-style args and returns the exit code. SIGINT/SIGTERM
// cancel the command's context.
func Main(args []string) int {
	return MainIO(args, os.Stdout, os.Stderr)
}

// MainIO is Main with explicit output streams (for tests).
func MainIO(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return ExitFailed
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			if c := commands[args[1]]; c != nil {
				return c.Run(context.Background(), []string{"-h"}, stdout, stderr)
			}
		}
		usage(stdout)
		return ExitOK
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, "drover", Version)
		return ExitOK
	}
	c := commands[args[0]]
	if c == nil {
		fmt.Fprintf(stderr, "drover: unknown command %q\n\n", args[0])
		usage(stderr)
		return ExitFailed
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return c.Run(ctx, args[1:], stdout, stderr)
}

// HostFlags are the flags every command that works on inventory hosts shares.
type HostFlags struct {
	Inventory      string
	Limit          string
	SSHConfig      string
	Forks          int
	AcceptNew      bool
	ConnectTimeout time.Duration
}

// Register adds -i/--inventory, --limit/-l, --ssh-config/-F, --forks/-f, --accept-new-host-keys
// and --connect-timeout to fs.
func (f *HostFlags) Register(fs *flag.FlagSet) {
	for _, n := range []string{"i", "inventory"} {
		fs.StringVar(&f.Inventory, n, "", "inventory file (YAML or INI)")
	}
	for _, n := range []string{"l", "limit"} {
		fs.StringVar(&f.Limit, n, "", "host pattern: a,b  group  all:!host  g1:&g2  web*  ~regex")
	}
	for _, n := range []string{"F", "ssh-config"} {
		fs.StringVar(&f.SSHConfig, n, "", "ssh config file instead of ~/.ssh/config and /etc/ssh/ssh_config")
	}
	for _, n := range []string{"f", "forks"} {
		fs.IntVar(&f.Forks, n, 50, "hosts worked on in parallel")
	}
	fs.BoolVar(&f.AcceptNew, "accept-new-host-keys", false, "record unknown host keys in known_hosts (StrictHostKeyChecking accept-new); changed keys still fail")
	fs.DurationVar(&f.ConnectTimeout, "connect-timeout", 30*time.Second, "give up connecting to a host after this long (retries included)")
}

// Load reads the inventory and applies --limit.
func (f *HostFlags) Load() (*inventory.Inventory, []*inventory.Host, error) {
	if f.Inventory == "" {
		return nil, nil, fmt.Errorf("no inventory: pass -i FILE")
	}
	inv, err := inventory.Load(f.Inventory)
	if err != nil {
		return nil, nil, err
	}
	hosts, err := inv.Limit(f.Limit)
	if err != nil {
		return nil, nil, err
	}
	return inv, hosts, nil
}

// Pool creates the SSH connection pool; warnings go to stderr.
func (f *HostFlags) Pool(stderr io.Writer) (*sshx.Pool, error) {
	var mu sync.Mutex
	return sshx.NewPool(sshx.Options{
		ConfigFile:        f.SSHConfig,
		AcceptNewHostKeys: f.AcceptNew,
		ConnectTimeout:    f.ConnectTimeout,
		Forks:             f.Forks,
		Warnf: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(stderr, "warning: "+format+"\n", args...)
		},
	})
}

// parseFlags parses args, printing errors/usage to stderr; ok=false means return code.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) (code int, ok bool) {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return ExitOK, false
		}
		return ExitFailed, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "drover %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return ExitFailed, false
	}
	return 0, true
}
