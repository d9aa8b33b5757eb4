package kafka

// kafkajs, an independent pure-JavaScript client: admin, idempotent
// producer (none/gzip), consumer groups with rebalancing and resume. The
// script is testdata/kafkajs/compat.js; kafkajs itself comes from npm:
//
//	npm install --prefix /tmp/drover-kafkajs kafkajs@2.2.4
//
// (or DROVER_KAFKAJS=<dir containing node_modules/kafkajs>).

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKafkaJS(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("!!! node NOT INSTALLED: skipping the kafkajs compatibility test !!!")
	}
	dir := os.Getenv("DROVER_KAFKAJS")
	if dir == "" {
		dir = "/tmp/drover-kafkajs"
	}
	mods := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(mods, "kafkajs", "package.json")); err != nil {
		t.Skipf("!!! kafkajs NOT INSTALLED in %s: skipping (npm install --prefix %s kafkajs@2.2.4) !!!", dir, dir)
	}
	s := startServer(t, t.TempDir())
	script, _ := filepath.Abs("testdata/kafkajs/compat.js")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, s.Addr())
	cmd.Env = append(os.Environ(), "NODE_PATH="+mods)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("kafkajs:\n%s", out.String())
	if err != nil || !strings.Contains(out.String(), "KAFKAJS OK") {
		t.Fatalf("kafkajs compat script: %v", err)
	}
}
