package inventory

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func names(hs []*Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSeedINI(t *testing.T) {
	inv, err := Load("../../inventories/seed/hosts")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name string
		role Role
		id   int
	}{
		{"peter-zk01.foo.bar", RoleCoordinator, 1},
		{"peter-zk02.foo.bar", RoleCoordinator, 2},
		{"peter-zk03.foo.bar", RoleCoordinator, 3},
		{"peter-kafka01.foo.bar", RoleBroker, 1},
		{"peter-kafka02.foo.bar", RoleBroker, 2},
		{"peter-kafka03.foo.bar", RoleBroker, 3},
	}
	if len(inv.Hosts) != len(want) {
		t.Fatalf("hosts = %v", names(inv.Hosts))
	}
	for i, w := range want {
		h := inv.Hosts[i]
		if h.Name != w.name || h.Role != w.role || h.ID != w.id || h.IDSource != "host name" {
			t.Errorf("host %d = %s %s %d (%s), want %+v", i, h.Name, h.Role, h.ID, h.IDSource, w)
		}
		if h.Address != h.Name || h.Port != 0 || h.User != "" {
			t.Errorf("%s: connection = %s:%d %q, want the name unchanged for ssh_config", h.Name, h.Address, h.Port, h.User)
		}
	}
	if got := inv.Hosts[0].Pos.String(); got != "../../inventories/seed/hosts:2" {
		t.Errorf("pos = %s", got)
	}
}

func TestLocalAndEC2Examples(t *testing.T) {
	inv, err := Load("../../inventories/local/inventory.yml")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(inv.ByRole(RoleCoordinator)); !reflect.DeepEqual(got, []string{"node1", "node2", "node3"}) {
		t.Errorf("coordinators = %v", got)
	}
	for _, h := range inv.ByRole(RoleBroker) {
		if h.User != "ec2-user" || h.Become == nil || !*h.Become {
			t.Errorf("%s: user %q become %v", h.Name, h.User, h.Become)
		}
		if n, _ := h.Int("min_insync_replicas", 0); n != 2 {
			t.Errorf("%s: min_insync_replicas = %d", h.Name, n)
		}
	}
	if got := inv.Host("node5").ID; got != 5 {
		t.Errorf("node5 id = %d", got)
	}

	inv, err = Load("../../inventories/ec2/inventory.yml")
	if err != nil {
		t.Fatal(err)
	}
	zk := inv.Host("zk-2.internal.example.com")
	k := inv.Host("kafka-3.internal.example.com")
	if zk.String("heap", "") != "512m" || k.String("heap", "") != "1g" || k.String("data_root", "") != "/var/lib/drover" {
		t.Errorf("group_vars not applied: zk heap %q kafka heap %q", zk.String("heap", ""), k.String("heap", ""))
	}
	if b, _ := k.Bytes("heap", 0); b != 1<<30 {
		t.Errorf("heap bytes = %d", b)
	}
	if got := k.Strings("log_dirs"); !reflect.DeepEqual(got, []string{"/var/lib/drover/kafka"}) {
		t.Errorf("log_dirs = %v", got)
	}
	if !strings.HasSuffix(k.Where("heap"), "group_vars/kafka.yml:2") {
		t.Errorf("heap defined at %s", k.Where("heap"))
	}
	if zk.ID != 2 || k.ID != 3 {
		t.Errorf("ids %d %d", zk.ID, k.ID)
	}
}

func TestPrecedence(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"inv.yml": `
all:
  vars: {v: all, only_all: 1, file_vs_gv: inventory}
  children:
    parent:
      vars: {v: parent, pv: parent}
      children:
        child:
          vars: {v: child}
          hosts:
            h1: {hv: inline}
            h2:
    aaa:
      vars: {same_depth: aaa}
      hosts: {h1: }
    zzz:
      vars: {same_depth: zzz}
      hosts: {h1: }
`,
		"group_vars/all.yml":       "file_vs_gv: group_vars\n",
		"group_vars/child/10.yml":  "dir: ten\n",
		"group_vars/child/20.yaml": "dir: twenty\n",
		"host_vars/h1":             "hv: host_vars\n",
	})
	inv, err := Load(filepath.Join(dir, "inv.yml"))
	if err != nil {
		t.Fatal(err)
	}
	h1, h2 := inv.Host("h1"), inv.Host("h2")
	check := func(h *Host, k, want string) {
		t.Helper()
		if got := h.String(k, "<unset>"); got != want {
			t.Errorf("%s %s = %q, want %q (from %s)", h.Name, k, got, want, h.Where(k))
		}
	}
	check(h1, "v", "child")
	check(h1, "pv", "parent")
	check(h1, "only_all", "1")
	check(h1, "same_depth", "zzz")
	check(h1, "hv", "host_vars")
	check(h2, "hv", "<unset>")
	check(h1, "file_vs_gv", "group_vars")
	check(h1, "dir", "twenty")
	if !reflect.DeepEqual(h1.Groups, []string{"aaa", "parent", "zzz", "child"}) {
		t.Errorf("groups = %v", h1.Groups)
	}
}

func TestINIFeatures(t *testing.T) {
	src := `# comment
loose.example.com

[zk]
zk[1:3].x ansible_user=admin myid_unused=1
[kafka]
k-[a:b].x:2222 ansible_host=10.0.0.9
k-c.x  ansible_become=True  note="two words" # comment

[kafka:vars]
heap = "2g"
[cluster:children]
zk
kafka
[cluster:vars]
ansible_user=ec2-user
`
	inv, err := Parse("hosts", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(inv.Hosts); !reflect.DeepEqual(got, []string{"loose.example.com", "zk1.x", "zk2.x", "zk3.x", "k-a.x", "k-b.x", "k-c.x"}) {
		t.Fatalf("hosts = %v", got)
	}
	if _, err := Parse("hosts", []byte(src)); err != nil {
		t.Fatal(err)
	}
	ka := inv.Host("k-a.x")
	if ka.Port != 2222 || ka.Address != "10.0.0.9" || ka.User != "ec2-user" || ka.String("heap", "") != "2g" {
		t.Errorf("k-a.x = %+v", ka)
	}
	if inv.Host("zk2.x").User != "admin" {
		t.Errorf("inline var must beat group var")
	}
	kc := inv.Host("k-c.x")
	if kc.String("note", "") != "two words" || kc.Become == nil || !*kc.Become {
		t.Errorf("k-c.x vars = %v", kc.Vars)
	}
	if inv.Host("loose.example.com").Groups[0] != "ungrouped" {
		t.Errorf("ungrouped: %v", inv.Host("loose.example.com").Groups)
	}
	// Duplicate broker_id=7 on both k-a and k-b.
	_ = inv
}

func TestIDs(t *testing.T) {
	cases := []struct {
		name, src string
		want      map[string]int
		err       string
	}{
		{"explicit and name", `
[zookeeper]
a.x myid=5
zk2.x
[kafka]
kafka12
kb broker_id=0
`, map[string]int{"a.x": 5, "zk2.x": 2, "kafka12": 12, "kb": 0}, ""},
		{"index", `
[brokers]
alpha
beta
`, map[string]int{"alpha": 1, "beta": 2}, ""},
		{"zookeeper_id alias", `
[zk]
x zookeeper_id=9
`, map[string]int{"x": 9}, ""},
		{"duplicate", `
[kafka]
kafka1.a
kafka1.b
`, nil, `hosts:4: broker id 1 of host kafka1.b (host name) duplicates host kafka1.a (host name, hosts:3)`},
		{"duplicate explicit", `
[zk]
zk1
other myid=1
`, nil, "duplicates host zk1"},
		{"bad myid", `
[zk]
zk1 myid=300
`, nil, "hosts:3: host zk1: myid=300 is out of range 1..255"},
		{"non-numeric", `
[kafka]
k1 broker_id=abc
`, nil, "hosts:3: host k1: broker_id=abc is not an integer"},
		{"both roles", `
[zk]
h1
[kafka]
h1
`, nil, `hosts:3: host h1 is in coordinator group "zk" and broker group "kafka"`},
		{"both roles decided", `
[zk]
h1 drover_role=broker
[kafka]
h1
`, map[string]int{"h1": 1}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inv, err := Parse("hosts", []byte(c.src))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for n, id := range c.want {
				if h := inv.Host(n); h == nil || h.ID != id {
					t.Errorf("%s id = %+v, want %d", n, h, id)
				}
			}
		})
	}
}

func TestErrorPositions(t *testing.T) {
	cases := []struct {
		name, file, src, want string
	}{
		{"unknown key", "i.yml", "all:\n  children:\n    kafka:\n      host:\n        k1:\n", `i.yml:4: unknown key "host" in group "kafka"`},
		{"top-level hosts", "i.yml", "hosts:\n  a:\n", `i.yml:1: unknown top-level key "hosts"`},
		{"hosts list", "i.yml", "all:\n  hosts:\n    - a\n    - b\n", `i.yml:3: hosts of group "all" must be a mapping`},
		{"bad port", "i.yml", "all:\n  hosts:\n    a:\n      ansible_port: 70000\n", `i.yml:4: host a: ansible_port=70000 is not a port number`},
		{"yaml syntax", "i.yml", "all:\n  hosts:\n    a: [\n", `i.yml:3: invalid YAML`},
		{"tab", "i.yml", "all:\n\thosts:\n", `i.yml:2: invalid YAML`},
		{"ini section", "hosts", "[a]\nh1\n[a:kids]\n", `hosts:3: unknown section type "kids"`},
		{"ini var", "hosts", "[a]\nh1 port\n", `hosts:2: host h1: expected key=value, got "port"`},
		{"ini range", "hosts", "[a]\nh[3:1]\n", `hosts:2: host "h[3:1]": host range [3:1] starts after it ends`},
		{"ini child", "hosts", "[a:children]\nb\n", ""},
		{"ini quote", "hosts", "[a]\nh1 x='abc\n", "hosts:2: unterminated ' quote"},
		{"ini vars", "hosts", "[a:vars]\nnovalue\n", `hosts:2: [a:vars] expects key=value`},
		{"cycle", "hosts", "[a:children]\nb\n[b:children]\na\n", "is its own ancestor"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.file, []byte(c.src))
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v\nwant %q", err, c.want)
			}
		})
	}
}

func TestVarDirErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"inv.yml":              "all:\n  hosts:\n    h1:\n",
		"group_vars/kafak.yml": "heap: 1g\n",
	})
	_, err := Load(filepath.Join(dir, "inv.yml"))
	if err == nil || !strings.Contains(err.Error(), `group_vars for unknown group "kafak"`) {
		t.Fatalf("err = %v", err)
	}
	dir = writeFiles(t, map[string]string{
		"inv.yml":          "all:\n  hosts:\n    h1:\n",
		"host_vars/h1.yml": "a: 1\nb: [\n",
	})
	_, err = Load(filepath.Join(dir, "inv.yml"))
	if err == nil || !strings.Contains(err.Error(), "host_vars/h1.yml:2: invalid YAML") {
		t.Fatalf("err = %v", err)
	}
}

func TestYAMLNullsAndRanges(t *testing.T) {
	src := `
all:
  hosts:
  children:
    kafka:
      hosts:
        peter-kafka[01:03].foo.bar:
          ansible_user: ubuntu
    empty:
    zookeeper:
      hosts: {zk-a: null}
      vars:
`
	inv, err := Parse("x.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(inv.Hosts); !reflect.DeepEqual(got, []string{"peter-kafka01.foo.bar", "peter-kafka02.foo.bar", "peter-kafka03.foo.bar", "zk-a"}) {
		t.Errorf("hosts = %v", got)
	}
	if inv.Host("peter-kafka02.foo.bar").User != "ubuntu" || inv.Host("zk-a").ID != 1 {
		t.Errorf("vars/ids wrong")
	}
}

func TestConnectionVars(t *testing.T) {
	src := `
all:
  hosts:
    a:
      ansible_ssh_host: 10.1.1.1
      ansible_ssh_port: "2200"
      ansible_ssh_user: root
      ansible_ssh_private_key_file: ~/.ssh/k.pem
      ansible_become: "no"
      ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o ProxyJump=ec2-user@bastion:2222'
    b:
      ansible_connection: local
      drover_proxy_jump: j1,j2
`
	inv, err := Parse("x.yml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	a, b := inv.Host("a"), inv.Host("b")
	if a.Address != "10.1.1.1" || a.Port != 2200 || a.User != "root" || a.KeyFile != "~/.ssh/k.pem" || a.Become == nil || *a.Become || a.ProxyJump != "ec2-user@bastion:2222" {
		t.Errorf("a = %+v", a)
	}
	if b.Connection != "local" || b.ProxyJump != "j1,j2" {
		t.Errorf("b = %+v", b)
	}
}

func TestLimit(t *testing.T) {
	inv, err := Parse("hosts", []byte(`
[zk]
zk1
zk2
zk3
[kafka]
kafka1
kafka2
[east]
zk1
kafka1
[all_brokers:children]
kafka
`))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{
		"":                 {"zk1", "zk2", "zk3", "kafka1", "kafka2"},
		"all":              {"zk1", "zk2", "zk3", "kafka1", "kafka2"},
		"kafka2,zk1":       {"zk1", "kafka2"},
		"zk":               {"zk1", "zk2", "zk3"},
		"all:!zk2":         {"zk1", "zk3", "kafka1", "kafka2"},
		"!zk2":             {"zk1", "zk3", "kafka1", "kafka2"},
		"zk:&east":         {"zk1"},
		"&east:zk":         {"zk1"},
		"all_brokers":      {"kafka1", "kafka2"},
		"kafka*":           {"kafka1", "kafka2"},
		"zk[12]":           {"zk1", "zk2"},
		"*:!east":          {"zk2", "zk3", "kafka2"},
		"~zk[23]":          {"zk2", "zk3"},
		"zk,kafka,!east":   {"zk2", "zk3", "kafka2"},
		"all,&all_brokers": {"kafka1", "kafka2"},
	}
	for p, want := range cases {
		got, err := inv.Limit(p)
		if err != nil {
			t.Errorf("%q: %v", p, err)
			continue
		}
		if !reflect.DeepEqual(names(got), want) {
			t.Errorf("Limit(%q) = %v, want %v", p, names(got), want)
		}
	}
	for _, p := range []string{"zk9", "kafka,typo", "all:!nosuch", "~(", "nomatch*"} {
		if _, err := inv.Limit(p); err == nil {
			t.Errorf("Limit(%q) should fail", p)
		}
	}
}

func TestIDFromName(t *testing.T) {
	for name, want := range map[string]int{"peter-zk03.foo.bar": 3, "kafka12": 12, "node1": 1, "zk": -1, "10.0.0.3": -1, "a1b": -1} {
		n, ok := IDFromName(name)
		if !ok {
			n = -1
		}
		if n != want {
			t.Errorf("IDFromName(%q) = %d, want %d", name, n, want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for s, want := range map[string]int64{"1g": 1 << 30, "512M": 512 << 20, "2GiB": 2 << 30, "1.5g": 3 << 29, "100": 100, "4kb": 4096} {
		if got, err := ParseBytes(s); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v", s, got, err)
		}
	}
	if _, err := ParseBytes("1x"); err == nil {
		t.Error("1x should fail")
	}
}
