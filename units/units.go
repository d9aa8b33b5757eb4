// Package units holds the systemd unit templates drover installs, embedded so the controller ships
// them inside its own binary. A template is rendered per host with Data.
package units

import (
	"bytes"
	"embed"
	"fmt"
	"text/template"
)

//go:embed *.service
var files embed.FS

// Data fills a unit template.
type Data struct {
	Description     string
	User            string // dedicated system user the service runs as
	Binary          string // stable symlink to the content-addressed binary
	Config          string // the service's config file
	EnvironmentFile string // carries GOMEMLIMIT
	ReadWritePaths  []string
	MemoryHigh      string // systemd size, e.g. "1280M"; empty = no limit
	MemoryMax       string
	TimeoutStopSec  int // above the service's own graceful shutdown time
	LimitNOFILE     int
}

// Names lists the unit templates, e.g. "drover-broker.service".
func Names() []string {
	ents, _ := files.ReadDir(".")
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// Render renders the named unit template.
func Render(name string, d Data) (string, error) {
	src, err := files.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("unit template %s: %w", name, err)
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return "", fmt.Errorf("parse unit template %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("render unit %s: %w", name, err)
	}
	return b.String(), nil
}
