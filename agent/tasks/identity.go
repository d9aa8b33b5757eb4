package tasks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/drover/drover/agent/protocol"
)

// runIdentity writes the node id file, refusing to renumber a node whose data dir has data.
func runIdentity(ctx context.Context, env *Env, t protocol.Task) (Result, error) {
	var p protocol.IdentityParams
	if err := decode(t, &p); err != nil {
		return Result{}, err
	}
	if p.Value == "" || strings.ContainsAny(p.Value, "\n\r") {
		return Result{}, fmt.Errorf("bad id value %q", p.Value)
	}
	name := p.Name
	if name == "" {
		name = filepath.Base(p.Path)
	}
	real, err := env.writable(t, p.Path)
	if err != nil {
		return Result{}, err
	}
	a, err := env.resolveAttrs(p.Mode, 0644, p.Owner, p.Group)
	if err != nil {
		if env.Check {
			// The owner may be created by an earlier task that check mode did not run.
			a, err = env.resolveAttrs(p.Mode, 0644, "", "")
		}
		if err != nil {
			return Result{}, err
		}
	}
	old, err := os.ReadFile(real)
	switch {
	case err == nil:
		cur := strings.TrimSpace(string(old))
		if cur != p.Value && p.DataDir != "" {
			dd, err := env.Path(p.DataDir)
			if err != nil {
				return Result{}, err
			}
			if data := dataEntries(dd, filepath.Base(p.Path)); len(data) > 0 {
				return Result{}, fmt.Errorf("refusing to change %s of this node from %s to %s: %s already holds data (%s); "+
					"fix the inventory (explicit id for this host), or wipe the node's data to renumber it",
					name, cur, p.Value, p.DataDir, strings.Join(data, ", "))
			}
		}
	case os.IsNotExist(err):
	default:
		return Result{}, fmt.Errorf("read %s: %w", p.Path, err)
	}
	res, err := ensureFile(env, p.Path, real, []byte(p.Value+"\n"), a, false)
	if res.Changed && res.Msg == "content changed" {
		res.Msg = fmt.Sprintf("%s %s -> %s", name, strings.TrimSpace(string(old)), p.Value)
	}
	return res, err
}

// dataEntries lists what in dir counts as data: anything but the id file, lost+found and
// drover temp files. At most 3 names are returned.
func dataEntries(dir, idFile string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if n == idFile || n == "lost+found" || strings.Contains(n, ".drover-") {
			continue
		}
		out = append(out, n)
		if len(out) == 3 {
			break
		}
	}
	return out
}
