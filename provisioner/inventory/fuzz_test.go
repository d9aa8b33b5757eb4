package inventory

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// The parsers must never panic and must report every failure as a positioned *Error.
func checkParsed(t *testing.T, name string, data []byte) {
	inv, err := Parse(name, data)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error without position: %v", err)
		}
		return
	}
	for _, h := range inv.Hosts {
		if h.Name == "" {
			t.Fatalf("empty host name")
		}
		if strings.Contains(h.Name, ":") {
			continue // IPv6 literals need a comma-separated limit
		}
		if _, err := inv.Limit(h.Name); err != nil {
			t.Fatalf("limit to own host %q: %v", h.Name, err)
		}
	}
}

func FuzzINI(f *testing.F) {
	if seed, err := os.ReadFile("../../inventories/seed/hosts"); err == nil {
		f.Add(seed)
	}
	f.Add([]byte("[a]\nh[01:03].x ansible_port=22 k='v w'\n[a:vars]\nx=1\n[b:children]\na\n"))
	f.Add([]byte("h:2222\n[z:children]\nz\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParsed(t, "hosts", data)
	})
}

func FuzzYAML(f *testing.F) {
	if seed, err := os.ReadFile("../../inventories/local/inventory.yml"); err == nil {
		f.Add(seed)
	}
	f.Add([]byte("all:\n  hosts:\n    a:\n  children:\n    kafka:\n      hosts: {k[1:3]: {broker_id: 1}}\n"))
	f.Add([]byte("all: &x\n  children:\n    g: *x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParsed(t, "inventory.yml", data)
	})
}
