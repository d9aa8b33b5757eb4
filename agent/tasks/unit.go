package tasks

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/drover/drover/agent/protocol"
)

var unitNameRE = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+\.(service|socket|target|timer|path|mount|slice)$`)

// runUnit writes a unit file. Two files that deserialize to the same options (same sections,
// keys and values in order) are equal: comments, blank lines and continuation formatting are not
// changes, so re-rendering a template never triggers a daemon-reload or restart by itself.
func runUnit(ctx context.Context, env *Env, t protocol.Task) (Result, error) {
	var p protocol.UnitParams
	if err := decode(t, &p); err != nil {
		return Result{}, err
	}
	if !unitNameRE.MatchString(p.Name) {
		return Result{}, fmt.Errorf("bad unit name %q", p.Name)
	}
	nodePath := p.Path
	if nodePath == "" {
		nodePath = path.Join("/etc/systemd/system", p.Name)
	}
	real, err := env.writable(t, nodePath)
	if err != nil {
		return Result{}, err
	}
	want, err := unit.DeserializeOptions(strings.NewReader(p.Content))
	if err != nil {
		return Result{}, fmt.Errorf("unit %s does not parse: %w", p.Name, err)
	}
	old, err := os.ReadFile(real)
	if err == nil {
		have, perr := unit.DeserializeOptions(bytes.NewReader(old))
		if perr == nil && unit.AllMatch(normalizeOpts(have), normalizeOpts(want)) {
			a := attrs{mode: 0644, setMode: true, uid: -1, gid: -1}
			fi, serr := os.Stat(real)
			if serr != nil {
				return Result{}, serr
			}
			if d := a.drift(fi); len(d) > 0 {
				res := Result{Changed: true, Msg: strings.Join(d, ", ")}
				if env.Check {
					return res, nil
				}
				return res, a.apply(real)
			}
			return Result{}, nil
		}
	} else if !os.IsNotExist(err) {
		return Result{}, fmt.Errorf("read %s: %w", nodePath, err)
	}
	a := attrs{mode: 0644, setMode: true, uid: 0, gid: 0}
	if os.Geteuid() != 0 {
		a.uid, a.gid = -1, -1
	}
	res, err := ensureFile(env, nodePath, real, []byte(p.Content), a, false)
	if err != nil {
		return res, err
	}
	if res.Changed {
		// A unit whose text changed but whose semantics did not never reaches here, so any
		// change makes systemd's view stale.
		env.unitsChanged = true
	}
	return res, nil
}

// normalizeOpts collapses whitespace runs in values: a continuation line and a
// single line mean the same command line to systemd.
func normalizeOpts(opts []*unit.UnitOption) []*unit.UnitOption {
	out := make([]*unit.UnitOption, len(opts))
	for i, o := range opts {
		out[i] = unit.NewUnitOption(o.Section, o.Name, strings.Join(strings.Fields(strings.ReplaceAll(o.Value, "\\\n", " ")), " "))
	}
	return out
}
