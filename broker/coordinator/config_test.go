package coordinator_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/broker/coordinator"
)

const sample = `# a zoo.cfg as the tutorials write it
tickTime=2000
initLimit=10
syncLimit=5
dataDir=/var/lib/zookeeper
clientPort=2181
maxClientCnxns=60
autopurge.snapRetainCount=5
autopurge.purgeInterval=2
4lw.commands.whitelist=ruok, srvr, mntr
admin.serverPort=7071
server.1=zk1.example.com:2888:3888
server.2=zk2.example.com:2888:3888;2181
server.3=[fd00::3]:2888:3888:participant;0.0.0.0:2182
`

func TestParseSample(t *testing.T) {
	c, warns, err := coordinator.Parse("zoo.cfg", strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Fatalf("warnings: %v", warns)
	}
	if c.TickTime != 2*time.Second || c.InitLimit != 10 || c.SyncLimit != 5 || c.DataDir != "/var/lib/zookeeper" || c.ClientPort != 2181 {
		t.Fatalf("basic keys: %+v", c)
	}
	if c.SnapRetainCount != 5 || c.PurgeInterval != 2 || c.AdminPort != 7071 || strings.Join(c.FourLetterWords, ",") != "ruok,srvr,mntr" {
		t.Fatalf("extras: %+v", c)
	}
	if len(c.Servers) != 3 {
		t.Fatalf("servers: %+v", c.Servers)
	}
	s3 := c.Servers[2]
	if s3.ID != 3 || s3.Host != "fd00::3" || s3.PeerPort != 2888 || s3.ElectionPort != 3888 || s3.ClientHost != "0.0.0.0" || s3.ClientPort != 2182 {
		t.Fatalf("server.3 = %+v", s3)
	}
	if got := s3.PeerURL(); got != "http://[fd00::3]:2888" {
		t.Fatalf("PeerURL = %s", got)
	}
	if c.Servers[1].ClientPort != 2181 || c.Servers[0].ClientPort != 0 {
		t.Fatalf("client ports: %+v", c.Servers)
	}
	hb, el := c.Timing()
	if hb != 50*time.Millisecond || el != 500*time.Millisecond {
		t.Fatalf("timing = %v %v", hb, el)
	}
	// The derived token depends on the server list only.
	c2, _, _ := coordinator.Parse("other.cfg", strings.NewReader(strings.Replace(sample, "tickTime=2000", "tickTime=3000", 1)))
	if c.Token() != c2.Token() {
		t.Fatal("token changed with tickTime")
	}
	c3, _, _ := coordinator.Parse("other.cfg", strings.NewReader(strings.Replace(sample, "zk1.example.com", "zk9.example.com", 1)))
	if c.Token() == c3.Token() {
		t.Fatal("token did not change with the server list")
	}
}

func TestParseDefaultsAndWarnings(t *testing.T) {
	c, warns, err := coordinator.Parse("z.cfg", strings.NewReader("dataDir=/d\nfrobnicate=1\n\n!comment\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || warns[0].String() != "z.cfg:2: unknown key frobnicate ignored" {
		t.Fatalf("warnings = %v", warns)
	}
	if c.ClientPort != 2181 || c.AdminPort != 7070 || c.TickTime != 2*time.Second || !c.Standalone() {
		t.Fatalf("defaults: %+v", c)
	}
	c, _, err = coordinator.Parse("z.cfg", strings.NewReader("dataDir=/d\ntickTime=8000\nsyncLimit=2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if hb, el := c.Timing(); hb != 200*time.Millisecond || el != time.Second {
		t.Fatalf("timing for tickTime=8000 syncLimit=2: %v %v", hb, el)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ text, want string }{
		{"dataDir=/d\nclientPort\n", "zoo.cfg:2: expected key=value"},
		{"dataDir=/d\n=5\n", "zoo.cfg:2: empty key"},
		{"dataDir=/d\ntickTime=fast\n", `zoo.cfg:2: tickTime: "fast" is not an integer`},
		{"dataDir=/d\nclientPort=70000\n", "zoo.cfg:2: clientPort: 70000 out of range 0..65535"},
		{"dataDir=/d\ntickTime=1\ntickTime=2\n", "zoo.cfg:3: duplicate key tickTime (first set on line 2)"},
		{"dataDir=/d\n\nserver.x=h:1:2\n", "zoo.cfg:3: server.x: server id must be an integer"},
		{"dataDir=/d\nserver.1=h:2888\n", "zoo.cfg:2: server.1: want host:peerPort:electionPort"},
		{"dataDir=/d\nserver.1=h:2888:3888:observer\n", "zoo.cfg:2: server.1: observers are not supported"},
		{"dataDir=/d\nserver.1=h:2888:3888;abc\n", "zoo.cfg:2: server.1: client port"},
		{"dataDir=/d\nserver.1=:2888:3888\n", `zoo.cfg:2: server.1: bad host ""`},
		{"dataDir=/d\nserver.1=a:1:2\nserver.01=b:1:2\n", "zoo.cfg:3: server id 1 already defined on line 2"},
		{"dataDir=/d\nserver.1=a:1:2\nserver.2=a:1:3\n", "zoo.cfg: server.1 and server.2 share peer address"},
		{"dataDir=/d\n4lw.commands.whitelist=ruok,stats\n", `zoo.cfg:2: 4lw.commands.whitelist: "stats" is not a four-letter word`},
		{"tickTime=2000\n", "zoo.cfg: dataDir is required"},
		{"dataDir=/d\ndrover.heartbeatMs=100\ndrover.electionMs=200\n", "at least 5 heartbeats"},
	}
	for _, tc := range cases {
		_, _, err := coordinator.Parse("zoo.cfg", strings.NewReader(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q", tc.text, err, tc.want)
		}
	}
	// Every bad line is reported, each as its own error.
	_, _, err := coordinator.Parse("zoo.cfg", strings.NewReader("dataDir=/d\nbad\ntickTime=x\nclientPort=-1\n"))
	var le *coordinator.LineError
	if !errors.As(err, &le) || strings.Count(err.Error(), "\n") != 2 {
		t.Fatalf("want three line errors, got %v", err)
	}
}

func TestLoadMyID(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "zoo.cfg")
	data := filepath.Join(dir, "data")
	os.WriteFile(cfgPath, []byte("dataDir="+data+"\nserver.1=a:2888:3888\nserver.2=b:2888:3888\n"), 0o644)
	if _, _, err := coordinator.Load(cfgPath); err == nil || !strings.Contains(err.Error(), "read myid") {
		t.Fatalf("missing myid: %v", err)
	}
	coordinator.WriteMyID(data, 3)
	if _, _, err := coordinator.Load(cfgPath); err == nil || !strings.Contains(err.Error(), "myid 3 has no server.3 line") {
		t.Fatalf("myid without server line: %v", err)
	}
	os.WriteFile(filepath.Join(data, "myid"), []byte("two\n"), 0o644)
	if _, _, err := coordinator.Load(cfgPath); err == nil || !strings.Contains(err.Error(), "want an integer") {
		t.Fatalf("bad myid: %v", err)
	}
	coordinator.WriteMyID(data, 2)
	c, _, err := coordinator.Load(cfgPath)
	if err != nil || c.MyID != 2 {
		t.Fatalf("Load = %+v %v", c, err)
	}
	// Standalone needs no myid.
	os.WriteFile(cfgPath, []byte("dataDir="+filepath.Join(dir, "empty")+"\n"), 0o644)
	if c, _, err := coordinator.Load(cfgPath); err != nil || c.MyID != 1 {
		t.Fatalf("standalone Load = %+v %v", c, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("dataDir=/d\nserver.1=[::1]:1:2;3\n")
	f.Add("dataDir=/d\nserver.1=h:1:2:participant;h:3\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, warns, err := coordinator.Parse("f.cfg", strings.NewReader(text))
		for _, w := range warns {
			if !strings.HasPrefix(w.String(), "f.cfg:") {
				t.Fatalf("warning without location: %s", w)
			}
		}
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "f.cfg:") {
					t.Fatalf("error line without location: %q", line)
				}
			}
			return
		}
		// Whatever parses must give a usable etcd configuration.
		if c.DataDir == "" {
			t.Fatal("accepted a config without dataDir")
		}
		hb, el := c.Timing()
		if hb <= 0 || el < 5*hb {
			t.Fatalf("bad timing %v %v", hb, el)
		}
		seen := map[string]bool{}
		for _, s := range c.Servers {
			if s.Host == "" || s.PeerPort < 1 || s.PeerPort > 65535 || seen[s.PeerURL()] {
				t.Fatalf("bad server %+v", s)
			}
			seen[s.PeerURL()] = true
		}
	})
}
