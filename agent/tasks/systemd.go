package tasks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
)

// Systemd is the part of systemd's manager API the service task uses.
type Systemd interface {
	Reload(ctx context.Context) error
	// State returns the unit's ActiveState and UnitFileState.
	State(ctx context.Context, name string) (active, file string, err error)
	Enable(ctx context.Context, name string) (changed bool, err error)
	Disable(ctx context.Context, name string) (changed bool, err error)
	// Job runs start|restart|stop and waits for the job's result ("done" on success).
	Job(ctx context.Context, op, name string) (result string, err error)
	Close()
}

// dialSystemd connects to systemd. As root the private socket /run/systemd/private works without
// a D-Bus daemon (minimal images have none); otherwise, or if that fails, the system bus.
// DROVER_AGENT_DBUS=private|system forces one (tests exercise both).
func dialSystemd(ctx context.Context) (Systemd, error) {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return nil, errNoSystemd
	}
	var c *sdbus.Conn
	var err error
	switch mode := os.Getenv("DROVER_AGENT_DBUS"); mode {
	case "private":
		c, err = sdbus.NewSystemdConnectionContext(ctx)
	case "system":
		c, err = sdbus.NewSystemConnectionContext(ctx)
	case "", "auto":
		if os.Geteuid() == 0 {
			c, err = sdbus.NewSystemdConnectionContext(ctx)
			if err == nil {
				break
			}
		}
		c, err = sdbus.NewWithContext(ctx)
	default:
		return nil, fmt.Errorf("DROVER_AGENT_DBUS=%q: want private, system or auto", mode)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to systemd: %w", err)
	}
	return &dbusSystemd{c: c}, nil
}

type dbusSystemd struct{ c *sdbus.Conn }

func (d *dbusSystemd) Close() { d.c.Close() }

func (d *dbusSystemd) Reload(ctx context.Context) error { return d.c.ReloadContext(ctx) }

func (d *dbusSystemd) State(ctx context.Context, name string) (string, string, error) {
	props, err := d.c.GetUnitPropertiesContext(ctx, name)
	if err != nil {
		return "", "", fmt.Errorf("properties of %s: %w", name, err)
	}
	active, _ := props["ActiveState"].(string)
	file, _ := props["UnitFileState"].(string)
	if load, _ := props["LoadState"].(string); load == "not-found" {
		return active, "not-found", nil
	}
	return active, file, nil
}

func (d *dbusSystemd) Enable(ctx context.Context, name string) (bool, error) {
	_, changes, err := d.c.EnableUnitFilesContext(ctx, []string{name}, false, false)
	if err != nil {
		return false, fmt.Errorf("enable %s: %w", name, err)
	}
	return len(changes) > 0, nil
}

func (d *dbusSystemd) Disable(ctx context.Context, name string) (bool, error) {
	changes, err := d.c.DisableUnitFilesContext(ctx, []string{name}, false)
	if err != nil {
		return false, fmt.Errorf("disable %s: %w", name, err)
	}
	return len(changes) > 0, nil
}

func (d *dbusSystemd) Job(ctx context.Context, op, name string) (string, error) {
	// Buffered: go-systemd delivers the result while holding its job-listener lock, so an
	// unread unbuffered channel would block every later job on this connection.
	ch := make(chan string, 1)
	var err error
	switch op {
	case "start":
		_, err = d.c.StartUnitContext(ctx, name, "replace", ch)
	case "restart":
		_, err = d.c.RestartUnitContext(ctx, name, "replace", ch)
	case "stop":
		_, err = d.c.StopUnitContext(ctx, name, "replace", ch)
	default:
		return "", fmt.Errorf("unknown job %q", op)
	}
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", op, name, err)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return "", fmt.Errorf("%s %s: waiting for job: %w", op, name, context.Cause(ctx))
	}
}

// systemdVersion asks the manager for its version (facts).
func systemdVersion(ctx context.Context) string {
	c, err := sdbus.NewWithContext(ctx)
	if err != nil {
		return ""
	}
	defer c.Close()
	v, err := c.GetManagerProperty("Version")
	if err != nil {
		return ""
	}
	return strings.Trim(v, `"`)
}

var errNoSystemd = errors.New("systemd is not running (PID 1 is not systemd)")
