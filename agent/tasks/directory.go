package tasks

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/drover/drover/agent/protocol"
)

func runDirectory(ctx context.Context, env *Env, t protocol.Task) (Result, error) {
	var p protocol.DirectoryParams
	if err := decode(t, &p); err != nil {
		return Result{}, err
	}
	path, err := env.writable(t, p.Path)
	if err != nil {
		return Result{}, err
	}
	a, err := env.resolveAttrs(p.Mode, 0755, p.Owner, p.Group)
	if err != nil {
		return Result{}, err
	}
	fi, err := os.Lstat(path)
	switch {
	case os.IsNotExist(err):
		if env.Check {
			return Result{Changed: true, Msg: "would create", Diff: fmt.Sprintf("+ directory %s %s\n", p.Path, fmtMode(a.mode))}, nil
		}
		if err := os.MkdirAll(path, a.mode.Perm()); err != nil {
			return Result{}, fmt.Errorf("mkdir %s: %w", p.Path, err)
		}
		if err := a.apply(path); err != nil {
			return Result{}, err
		}
		return Result{Changed: true, Msg: "created", Diff: fmt.Sprintf("+ directory %s %s\n", p.Path, fmtMode(a.mode))}, nil
	case err != nil:
		return Result{}, fmt.Errorf("stat %s: %w", p.Path, err)
	case !fi.IsDir():
		return Result{}, fmt.Errorf("%s exists and is not a directory (%s)", p.Path, fi.Mode().Type())
	}
	if p.Mode == "" {
		a.setMode = false
	}
	d := a.drift(fi)
	if len(d) == 0 {
		return Result{}, nil
	}
	res := Result{Changed: true, Msg: strings.Join(d, ", "), Diff: "~ " + p.Path + ": " + strings.Join(d, ", ") + "\n"}
	if env.Check {
		return res, nil
	}
	return res, a.apply(path)
}
