// Package farm runs N loopback sshd processes that stand in for N hosts: each has its own port,
// host key, temporary root directory and HOME (so no login shell start-up files are read), and
// accepts root logins with one generated client key. It writes the inventory, ssh_config and
// known_hosts a controller needs to reach them.
package farm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHD is the daemon binary; it must be started by absolute path.
var SSHD = "/usr/sbin/sshd"

// Host is one simulated host.
type Host struct {
	Name           string // h001, ...: the inventory name and ssh_config alias
	Addr           string // 127.0.0.1:port
	Port           int
	KeyFile        string // client private key that logs in as root
	Root           string // the host's own temporary root directory
	Home           string // HOME in its sessions
	Dir            string // everything else of this host: sshd_config, host key, log
	HostKey        ssh.PublicKey
	KnownHostsLine string // "[127.0.0.1]:port ssh-ed25519 AAAA..."

	cmd    *exec.Cmd
	exited chan struct{}
}

// Farm is a set of running hosts; Stop kills every sshd it started.
type Farm struct {
	Dir     string // temporary directory holding everything; removed by Stop unless Keep
	KeyFile string // client private key, shared by all hosts
	Signer  ssh.Signer
	Hosts   []*Host
	Keep    bool

	mu      sync.Mutex
	stopped bool
}

// Options tune Start. The zero value is fine.
type Options struct {
	Dir          string        // parent for the farm's temporary directory ("" = os.TempDir())
	StartTimeout time.Duration // per host, default 30s
	Parallel     int           // sshd processes started at once, default 32
}

// Start brings up n hosts and returns once every one accepts TCP connections. On error (or ctx
// cancellation) everything already started is stopped.
func Start(ctx context.Context, n int, opt Options) (f *Farm, err error) {
	if n < 1 {
		return nil, errors.New("farm: n must be >= 1")
	}
	if opt.StartTimeout == 0 {
		opt.StartTimeout = 30 * time.Second
	}
	if opt.Parallel == 0 {
		opt.Parallel = 32
	}
	if err := RaiseNoFile(); err != nil {
		return nil, err
	}
	if err := privsepDir(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opt.Dir, "drover-farm-")
	if err != nil {
		return nil, fmt.Errorf("farm dir: %w", err)
	}
	f = &Farm{Dir: dir, KeyFile: filepath.Join(dir, "client_key")}
	defer func() {
		if err != nil {
			f.Stop()
		}
	}()
	priv, err := writeKey(f.KeyFile)
	if err != nil {
		return f, err
	}
	if f.Signer, err = ssh.NewSignerFromKey(priv); err != nil {
		return f, err
	}
	authorized := ssh.MarshalAuthorizedKey(f.Signer.PublicKey())
	if err := os.WriteFile(f.KeyFile+".pub", authorized, 0o644); err != nil {
		return f, err
	}

	ports, err := freePorts(n)
	if err != nil {
		return f, err
	}
	for i := 0; i < n; i++ {
		h := &Host{Name: fmt.Sprintf("h%03d", i+1), Port: ports[i], KeyFile: f.KeyFile}
		h.Dir = filepath.Join(dir, h.Name)
		h.Root = filepath.Join(h.Dir, "root")
		h.Home = filepath.Join(h.Dir, "home")
		if err := h.prepare(authorized); err != nil {
			return f, err
		}
		f.Hosts = append(f.Hosts, h)
	}
	// One config check up front turns a bad option into one clear error instead of n.
	if out, err := exec.Command(SSHD, "-t", "-f", filepath.Join(f.Hosts[0].Dir, "sshd_config")).CombinedOutput(); err != nil {
		return f, fmt.Errorf("sshd -t: %v: %s", err, bytes.TrimSpace(out))
	}

	sem := make(chan struct{}, opt.Parallel)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for _, h := range f.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := ctx.Err(); err != nil {
				errs <- err
				return
			}
			errs <- f.startHost(ctx, h, opt.StartTimeout)
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		if e != nil {
			return f, e
		}
	}
	return f, nil
}

func (h *Host) prepare(authorized []byte) error {
	for _, d := range []string{h.Root, h.Home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	hostKey := filepath.Join(h.Dir, "ssh_host_ed25519_key")
	priv, err := writeKey(hostKey)
	if err != nil {
		return err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	h.HostKey = signer.PublicKey()
	h.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(h.Port))
	h.KnownHostsLine = fmt.Sprintf("[127.0.0.1]:%d %s", h.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(h.HostKey))))
	if err := os.WriteFile(filepath.Join(h.Dir, "authorized_keys"), authorized, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(h.Dir, "sshd_config"), []byte(h.sshdConfig(hostKey)), 0o644)
}

// sshdConfig: root login by key only, no PAM/motd/lastlog/DNS so a session costs what sshd itself
// costs, and SetEnv HOME so the shell finds no start-up files (Debian's bash reads ~/.bashrc for
// sshd commands).
func (h *Host) sshdConfig(hostKey string) string {
	return fmt.Sprintf(`# drover bench farm host %[1]s
Port %[2]d
ListenAddress 127.0.0.1
HostKey %[3]s
PidFile none
AuthorizedKeysFile %[4]s
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
PrintLastLog no
StrictModes no
UseDNS no
MaxStartups 1000
MaxSessions 100
SetEnv HOME=%[5]s DROVER_FARM_ROOT=%[6]s
AllowTcpForwarding yes
Subsystem sftp internal-sftp
LogLevel ERROR
`, h.Name, h.Port, hostKey, filepath.Join(h.Dir, "authorized_keys"), h.Home, h.Root)
}

func (f *Farm) startHost(ctx context.Context, h *Host, timeout time.Duration) error {
	logPath := filepath.Join(h.Dir, "sshd.log")
	for attempt := 0; ; attempt++ {
		err := h.start(ctx, logPath, timeout)
		if err == nil {
			return nil
		}
		// Another process may have taken the port between freePorts and sshd's bind: pick again.
		if attempt < 3 && ctx.Err() == nil && bindFailed(logPath) {
			ports, perr := freePorts(1)
			if perr != nil {
				return perr
			}
			h.Port = ports[0]
			if perr := h.prepareConfigOnly(); perr != nil {
				return perr
			}
			continue
		}
		return fmt.Errorf("%s: %w", h.Name, err)
	}
}

func (h *Host) prepareConfigOnly() error {
	h.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(h.Port))
	h.KnownHostsLine = fmt.Sprintf("[127.0.0.1]:%d %s", h.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(h.HostKey))))
	return os.WriteFile(filepath.Join(h.Dir, "sshd_config"), []byte(h.sshdConfig(filepath.Join(h.Dir, "ssh_host_ed25519_key"))), 0o644)
}

func bindFailed(logPath string) bool {
	b, _ := os.ReadFile(logPath)
	return bytes.Contains(b, []byte("Address already in use"))
}

func (h *Host) start(ctx context.Context, logPath string, timeout time.Duration) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child keeps its own descriptor
	cmd := exec.Command(SSHD, "-D", "-e", "-f", filepath.Join(h.Dir, "sshd_config"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = h.Dir
	// Own process group (Stop kills the group); Pdeathsig so a crashed bench leaves nothing behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	h.cmd, h.exited = cmd, exited
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", h.Addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			h.cmd = nil
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("sshd exited before listening on %s: %s", h.Addr, bytes.TrimSpace(b))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd not listening on %s after %s", h.Addr, timeout)
		}
	}
}

// Stop kills every sshd the farm started (their process groups: SIGTERM, then SIGKILL after 5 s)
// and removes the farm directory unless Keep is set. Safe to call more than once.
func (f *Farm) Stop() {
	f.mu.Lock()
	if f.stopped {
		f.mu.Unlock()
		return
	}
	f.stopped = true
	f.mu.Unlock()
	for _, h := range f.Hosts {
		if h.cmd != nil && h.cmd.Process != nil {
			_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	deadline := time.After(5 * time.Second)
	for _, h := range f.Hosts {
		if h.cmd == nil {
			continue
		}
		select {
		case <-h.exited:
		case <-deadline:
			_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
			<-h.exited
		}
	}
	if !f.Keep && f.Dir != "" {
		os.RemoveAll(f.Dir)
	}
}

// RaiseNoFile sets the soft open-file limit to the hard one, for this process and the children
// it starts (a controller with hundreds of connections needs it).
func RaiseNoFile() error {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return fmt.Errorf("setrlimit NOFILE %d: %w", r.Max, err)
		}
	}
	return nil
}

// privsepDir: sshd refuses to start without it; the packaged unit normally creates it.
func privsepDir() error {
	if _, err := os.Stat("/run/sshd"); err == nil {
		return nil
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return fmt.Errorf("sshd privilege separation dir /run/sshd: %w", err)
	}
	return nil
}

func writeKey(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return priv, nil
}

// freePorts reserves n distinct loopback ports by holding them all open at once, then releases them.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
