package coordinator

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Defaults follow ZooKeeper's where ZooKeeper has one.
const (
	DefaultTickTime   = 2000 * time.Millisecond
	DefaultInitLimit  = 10
	DefaultSyncLimit  = 5
	DefaultClientPort = 2181
	DefaultPeerPort   = 2888
	// DefaultAdminPort serves /healthz and /metrics. ZooKeeper's AdminServer uses 8080, which
	// collides with too many other services on a broker node, so drover picks 7070.
	DefaultAdminPort         = 7070
	DefaultSnapRetainCount   = 3
	DefaultCompactionHours   = 1
	MarkerFile               = "drover-coordinator.json"
	MyIDFile                 = "myid"
	maxMemberID              = 255 // ZooKeeper allows more, but etcd clusters above 9 voters are a mistake anyway
	maxTickTime              = 60 * time.Second
	defaultFourLetterDefault = "*"
)

// Server is one server.N line.
type Server struct {
	ID           uint64
	Host         string
	PeerPort     int
	ElectionPort int // accepted for zoo.cfg compatibility; etcd elects over the peer port
	ClientHost   string
	ClientPort   int // 0 when the line has no ";clientPort" part
}

// PeerURL is the etcd peer URL of the server; it must be byte-identical in InitialCluster and
// in the member's AdvertisePeerUrls, so it is built in exactly one place.
func (s Server) PeerURL() string {
	return "http://" + net.JoinHostPort(s.Host, strconv.Itoa(s.PeerPort))
}

// MemberName is the etcd member name of the server.
func MemberName(id uint64) string { return "zk" + strconv.FormatUint(id, 10) }

// Config is a parsed zoo.cfg plus the member's myid.
type Config struct {
	File string

	TickTime          time.Duration
	InitLimit         int
	SyncLimit         int
	DataDir           string
	DataLogDir        string
	ClientPort        int
	ClientPortAddress string
	Servers           []Server

	SnapRetainCount int // autopurge.snapRetainCount
	PurgeInterval   int // autopurge.purgeInterval, hours; also the compaction retention

	AdminEnabled bool
	AdminAddress string
	AdminPort    int

	// FourLetterWords is the 4lw.commands.whitelist; "*" allows every word drover implements.
	FourLetterWords []string

	// Drover extras (drover.* keys).
	ClusterToken string        // drover.clusterToken; derived from the server list when empty
	Heartbeat    time.Duration // drover.heartbeatMs; derived from tickTime when zero
	Election     time.Duration // drover.electionMs; derived from tickTime and syncLimit when zero

	// MyID comes from dataDir/myid (Load), not from the file.
	MyID uint64
}

// Warning is a non-fatal finding, e.g. an unknown key.
type Warning struct {
	File string
	Line int
	Msg  string
}

func (w Warning) String() string { return fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Msg) }

// LineError is a problem with one line of the file.
type LineError struct {
	File string
	Line int // 0 when the problem is about the file as a whole
	Msg  string
}

func (e *LineError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ignoredKeys are real ZooKeeper settings with no meaning on etcd. They are accepted without a
// warning so an operator's existing zoo.cfg validates cleanly.
var ignoredKeys = map[string]bool{
	"maxClientCnxns": true, "minSessionTimeout": true, "maxSessionTimeout": true,
	"standaloneEnabled": true, "reconfigEnabled": true, "quorumListenOnAllIPs": true,
	"preAllocSize": true, "snapCount": true, "globalOutstandingLimit": true,
	"leaderServes": true, "cnxTimeout": true, "electionAlg": true, "syncEnabled": true,
	"jute.maxbuffer": true, "forceSync": true, "skipACL": true, "admin.commandURL": true,
	"admin.idleTimeout": true, "metricsProvider.className": true,
	"metricsProvider.httpPort": true, "metricsProvider.exportJvmInfo": true,
}

// ParseFile parses a zoo.cfg file. It does not read myid; see Load.
func ParseFile(path string) (*Config, []Warning, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse reads zoo.cfg syntax: "key=value" lines, '#' and '!' comments, blank lines. Every
// malformed line is reported (joined errors, each "FILE:LINE: problem") rather than only the
// first, so one `-t` run shows everything to fix.
func Parse(name string, r io.Reader) (*Config, []Warning, error) {
	c := &Config{
		File:            name,
		TickTime:        DefaultTickTime,
		InitLimit:       DefaultInitLimit,
		SyncLimit:       DefaultSyncLimit,
		ClientPort:      DefaultClientPort,
		SnapRetainCount: DefaultSnapRetainCount,
		AdminEnabled:    true,
		AdminPort:       DefaultAdminPort,
		FourLetterWords: []string{defaultFourLetterDefault},
	}
	var (
		warns   []Warning
		errs    []error
		seen    = map[string]int{}
		servers = map[uint64]int{}
	)
	bad := func(line int, format string, args ...any) {
		errs = append(errs, &LineError{File: name, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		raw := sc.Bytes()
		if lineNo == 1 {
			raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
		}
		line := strings.TrimSpace(string(raw))
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			bad(lineNo, "expected key=value, got %q", truncate(line))
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "" {
			bad(lineNo, "empty key")
			continue
		}
		if first, dup := seen[k]; dup {
			bad(lineNo, "duplicate key %s (first set on line %d)", k, first)
			continue
		}
		seen[k] = lineNo

		if strings.HasPrefix(k, "server.") {
			s, err := parseServer(k, v)
			if err != nil {
				bad(lineNo, "%v", err)
				continue
			}
			if first, dup := servers[s.ID]; dup {
				bad(lineNo, "server id %d already defined on line %d", s.ID, first)
				continue
			}
			servers[s.ID] = lineNo
			c.Servers = append(c.Servers, s)
			continue
		}

		var err error
		switch k {
		case "tickTime":
			var ms int
			if ms, err = atoiRange(v, 1, int(maxTickTime/time.Millisecond)); err == nil {
				c.TickTime = time.Duration(ms) * time.Millisecond
			}
		case "initLimit":
			c.InitLimit, err = atoiRange(v, 1, 1000)
		case "syncLimit":
			c.SyncLimit, err = atoiRange(v, 1, 1000)
		case "dataDir":
			c.DataDir, err = nonEmpty(v)
		case "dataLogDir":
			c.DataLogDir, err = nonEmpty(v)
		case "clientPort":
			c.ClientPort, err = atoiRange(v, 0, 65535)
		case "clientPortAddress":
			c.ClientPortAddress, err = nonEmpty(v)
		case "autopurge.snapRetainCount":
			c.SnapRetainCount, err = atoiRange(v, 3, 1000)
		case "autopurge.purgeInterval":
			c.PurgeInterval, err = atoiRange(v, 0, 24*365)
		case "admin.enableServer":
			c.AdminEnabled, err = strconv.ParseBool(v)
		case "admin.serverAddress":
			c.AdminAddress, err = nonEmpty(v)
		case "admin.serverPort":
			c.AdminPort, err = atoiRange(v, 0, 65535)
		case "4lw.commands.whitelist":
			c.FourLetterWords, err = parseWhitelist(v)
		case "drover.clusterToken":
			c.ClusterToken, err = nonEmpty(v)
		case "drover.heartbeatMs":
			var ms int
			if ms, err = atoiRange(v, 1, 10000); err == nil {
				c.Heartbeat = time.Duration(ms) * time.Millisecond
			}
		case "drover.electionMs":
			var ms int
			if ms, err = atoiRange(v, 1, 50000); err == nil {
				c.Election = time.Duration(ms) * time.Millisecond
			}
		default:
			if !ignoredKeys[k] {
				warns = append(warns, Warning{File: name, Line: lineNo, Msg: fmt.Sprintf("unknown key %s ignored", k)})
			}
		}
		if err != nil {
			bad(lineNo, "%s: %v", k, err)
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, &LineError{File: name, Line: lineNo + 1, Msg: fmt.Sprintf("read: %v", err)})
	}
	if len(errs) == 0 {
		errs = append(errs, c.validate()...)
	}
	if len(errs) > 0 {
		return nil, warns, errors.Join(errs...)
	}
	sort.Slice(c.Servers, func(i, j int) bool { return c.Servers[i].ID < c.Servers[j].ID })
	return c, warns, nil
}

func (c *Config) validate() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, &LineError{File: c.File, Msg: fmt.Sprintf(format, args...)})
	}
	if c.DataDir == "" {
		bad("dataDir is required")
	}
	hb, el := c.Timing()
	if el < 5*hb {
		bad("election timeout %v must be at least 5 heartbeats (%v)", el, hb)
	}
	peers := map[string]uint64{}
	for _, s := range c.Servers {
		if other, dup := peers[s.PeerURL()]; dup {
			bad("server.%d and server.%d share peer address %s", other, s.ID, s.PeerURL())
		}
		peers[s.PeerURL()] = s.ID
	}
	return errs
}

// parseServer parses "server.N" = "host:peerPort:electionPort[:participant][;[clientHost:]clientPort]".
func parseServer(k, v string) (Server, error) {
	var s Server
	id, err := strconv.ParseUint(strings.TrimPrefix(k, "server."), 10, 64)
	if err != nil || id < 1 || id > maxMemberID {
		return s, fmt.Errorf("%s: server id must be an integer 1..%d", k, maxMemberID)
	}
	s.ID = id
	quorum, client, hasClient := strings.Cut(v, ";")
	host, rest, err := splitHost(quorum)
	if err != nil {
		return s, fmt.Errorf("%s: %v", k, err)
	}
	parts := strings.Split(rest, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return s, fmt.Errorf("%s: want host:peerPort:electionPort[:participant], got %q", k, truncate(v))
	}
	if s.PeerPort, err = atoiRange(parts[0], 1, 65535); err != nil {
		return s, fmt.Errorf("%s: peer port: %v", k, err)
	}
	if s.ElectionPort, err = atoiRange(parts[1], 1, 65535); err != nil {
		return s, fmt.Errorf("%s: election port: %v", k, err)
	}
	if len(parts) == 3 {
		switch parts[2] {
		case "participant":
		case "observer":
			return s, fmt.Errorf("%s: observers are not supported", k)
		default:
			return s, fmt.Errorf("%s: unknown role %q (want participant)", k, truncate(parts[2]))
		}
	}
	s.Host = host
	if hasClient {
		client = strings.TrimSpace(client)
		chost, cport := "", client
		if i := strings.LastIndexByte(client, ':'); i >= 0 {
			if chost, _, err = splitHost(client); err != nil {
				return s, fmt.Errorf("%s: client address: %v", k, err)
			}
			cport = client[i+1:]
		}
		if s.ClientPort, err = atoiRange(cport, 1, 65535); err != nil {
			return s, fmt.Errorf("%s: client port: %v", k, err)
		}
		s.ClientHost = chost
	}
	return s, nil
}

// splitHost splits "host:rest" and "[v6]:rest".
func splitHost(s string) (host, rest string, err error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 || end+1 >= len(s) || s[end+1] != ':' {
			return "", "", fmt.Errorf("bad bracketed address %q", truncate(s))
		}
		host, rest = s[1:end], s[end+2:]
	} else {
		var ok bool
		if host, rest, ok = strings.Cut(s, ":"); !ok {
			return "", "", fmt.Errorf("want host:port, got %q", truncate(s))
		}
	}
	if host == "" || strings.ContainsAny(host, " \t/@?#[]") {
		return "", "", fmt.Errorf("bad host %q", truncate(host))
	}
	return host, rest, nil
}

func parseWhitelist(v string) ([]string, error) {
	var words []string
	for w := range strings.SplitSeq(v, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		if w != "*" && len(w) != 4 {
			return nil, fmt.Errorf("%q is not a four-letter word", truncate(w))
		}
		words = append(words, w)
	}
	if len(words) == 0 {
		return nil, errors.New("empty list")
	}
	return words, nil
}

func atoiRange(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", truncate(v))
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d out of range %d..%d", n, lo, hi)
	}
	return n, nil
}

func nonEmpty(v string) (string, error) {
	if v == "" {
		return "", errors.New("empty value")
	}
	return v, nil
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// Timing returns the etcd heartbeat and election timeouts; see the package doc for why.
func (c *Config) Timing() (heartbeat, election time.Duration) {
	heartbeat = c.Heartbeat
	if heartbeat == 0 {
		heartbeat = min(max(c.TickTime/40, 10*time.Millisecond), time.Second)
	}
	election = c.Election
	if election == 0 {
		election = heartbeat * time.Duration(2*c.SyncLimit)
		election = max(election, 5*heartbeat)
	}
	return heartbeat, election
}

// Standalone reports whether this is a single-member ensemble.
func (c *Config) Standalone() bool { return len(c.Servers) <= 1 }

// Token is the etcd initial cluster token: configured, or derived from the server list so
// that two ensembles with different server lists never mistake each other's members.
func (c *Config) Token() string {
	if c.ClusterToken != "" {
		return c.ClusterToken
	}
	h := sha256.New()
	for _, s := range c.Servers {
		fmt.Fprintf(h, "%d=%s\n", s.ID, s.PeerURL())
	}
	if len(c.Servers) == 0 {
		fmt.Fprintf(h, "standalone\n")
	}
	return "drover-" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Self returns this member's server entry. Standalone configs without server lines get a
// loopback peer URL: nobody else needs to reach it.
func (c *Config) Self() (Server, error) {
	if len(c.Servers) == 0 {
		return Server{ID: c.MyID, Host: "127.0.0.1", PeerPort: DefaultPeerPort}, nil
	}
	i := slices.IndexFunc(c.Servers, func(s Server) bool { return s.ID == c.MyID })
	if i < 0 {
		return Server{}, fmt.Errorf("myid %d has no server.%d line in %s", c.MyID, c.MyID, c.File)
	}
	return c.Servers[i], nil
}

// Load parses the config file and reads dataDir/myid.
func Load(path string) (*Config, []Warning, error) {
	c, warns, err := ParseFile(path)
	if err != nil {
		return nil, warns, err
	}
	if err := c.ReadMyID(); err != nil {
		return nil, warns, err
	}
	if _, err := c.Self(); err != nil {
		return nil, warns, err
	}
	return c, warns, nil
}

// ReadMyID reads dataDir/myid. A standalone config may omit it (ZooKeeper does not need it
// either); the member is then 1.
func (c *Config) ReadMyID() error {
	p := filepath.Join(c.DataDir, MyIDFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) && len(c.Servers) == 0 {
		c.MyID = 1
		return nil
	}
	if err != nil {
		return fmt.Errorf("read myid: %w", err)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || id < 1 || id > maxMemberID {
		return fmt.Errorf("read myid: %s: want an integer 1..%d, got %q", p, maxMemberID, truncate(strings.TrimSpace(string(b))))
	}
	c.MyID = id
	return nil
}

// WriteMyID writes dataDir/myid, creating dataDir; used by tests and tooling.
func WriteMyID(dataDir string, id uint64) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("write myid: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, MyIDFile), []byte(strconv.FormatUint(id, 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("write myid: %w", err)
	}
	return nil
}
