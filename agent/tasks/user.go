package tasks

import (
	"context"
	"fmt"
	"os"
	"regexp"

	"github.com/drover/drover/agent/protocol"
)

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// runUser ensures a system user exists. Existence is read from /etc/passwd; creation goes
// through useradd so the distribution's id ranges, shadow files and nscd stay consistent.
// An existing user is left alone (an operator may have tuned it).
func runUser(ctx context.Context, env *Env, t protocol.Task) (Result, error) {
	var p protocol.UserParams
	if err := decode(t, &p); err != nil {
		return Result{}, err
	}
	if !nameRE.MatchString(p.Name) {
		return Result{}, fmt.Errorf("bad user name %q", p.Name)
	}
	passwd, err := env.Path("/etc/passwd")
	if err != nil {
		return Result{}, err
	}
	users, err := readEntries(passwd)
	if err != nil {
		return Result{}, fmt.Errorf("read /etc/passwd: %w", err)
	}
	if _, ok := users[p.Name]; ok {
		return Result{}, nil
	}
	group, err := env.Path("/etc/group")
	if err != nil {
		return Result{}, err
	}
	groups, err := readEntries(group)
	if err != nil {
		return Result{}, fmt.Errorf("read /etc/group: %w", err)
	}
	shell := p.Shell
	if shell == "" {
		shell = "/usr/sbin/nologin"
		for _, s := range []string{"/usr/sbin/nologin", "/sbin/nologin"} {
			if rp, _ := env.Path(s); rp != "" {
				if _, err := os.Stat(rp); err == nil {
					shell = s
					break
				}
			}
		}
	}
	home := p.Home
	if home == "" {
		home = "/nonexistent"
	}
	args := []string{"--system", "--shell", shell, "--home-dir", home, "--no-create-home"}
	switch {
	case p.Group != "":
		if _, ok := groups[p.Group]; !ok && !env.Check {
			return Result{}, fmt.Errorf("primary group %q of user %q does not exist", p.Group, p.Name)
		}
		args = append(args, "--gid", p.Group)
	case groups[p.Name] != nil:
		args = append(args, "--gid", p.Name)
	default:
		args = append(args, "--user-group")
	}
	if env.Root != "" {
		args = append(args, "--prefix", env.Root)
	}
	args = append(args, p.Name)
	res := Result{Changed: true, Msg: "created system user", Diff: fmt.Sprintf("+ user %s (shell %s, home %s)\n", p.Name, shell, home)}
	if env.Check {
		res.Msg = "would create system user"
		return res, nil
	}
	if _, err := env.Exec(ctx, "useradd", args...); err != nil {
		return Result{}, err
	}
	return res, nil
}

func runGroup(ctx context.Context, env *Env, t protocol.Task) (Result, error) {
	var p protocol.GroupParams
	if err := decode(t, &p); err != nil {
		return Result{}, err
	}
	if !nameRE.MatchString(p.Name) {
		return Result{}, fmt.Errorf("bad group name %q", p.Name)
	}
	path, err := env.Path("/etc/group")
	if err != nil {
		return Result{}, err
	}
	groups, err := readEntries(path)
	if err != nil {
		return Result{}, fmt.Errorf("read /etc/group: %w", err)
	}
	if _, ok := groups[p.Name]; ok {
		return Result{}, nil
	}
	res := Result{Changed: true, Msg: "created system group", Diff: fmt.Sprintf("+ group %s\n", p.Name)}
	if env.Check {
		res.Msg = "would create system group"
		return res, nil
	}
	args := []string{"--system"}
	if env.Root != "" {
		args = append(args, "--prefix", env.Root)
	}
	if _, err := env.Exec(ctx, "groupadd", append(args, p.Name)...); err != nil {
		return Result{}, err
	}
	return res, nil
}
