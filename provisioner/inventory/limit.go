package inventory

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Limit selects hosts with an Ansible host pattern: "a,b" (or "a:b") unions, "group", "all",
// "*" / "?" wildcards on host and group names, "~regex", "!x" excludes, "&x" intersects.
// As in Ansible, unions apply first, then intersections, then exclusions, whatever their order.
// The result is in inventory order. A term that matches nothing is an error (a typo in --limit
// must not silently select fewer, or more, hosts). An empty pattern selects every host.
func (inv *Inventory) Limit(pattern string) ([]*Host, error) {
	pattern = strings.TrimSpace(pattern)
	if pattern == "" {
		return append([]*Host(nil), inv.Hosts...), nil
	}
	var terms []string
	if strings.Contains(pattern, ",") {
		terms = strings.Split(pattern, ",")
	} else {
		terms = splitLimitColons(pattern)
	}
	union := map[string]bool{}
	var inter []map[string]bool
	var excl []map[string]bool
	haveUnion := false
	for _, t := range terms {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		op := byte(0)
		if t[0] == '!' || t[0] == '&' {
			op, t = t[0], strings.TrimSpace(t[1:])
		}
		set, err := inv.matchTerm(t)
		if err != nil {
			return nil, err
		}
		switch op {
		case '!':
			excl = append(excl, set)
		case '&':
			inter = append(inter, set)
		default:
			haveUnion = true
			for h := range set {
				union[h] = true
			}
		}
	}
	if !haveUnion {
		// "!host" or "&g" alone mean "all hosts except / within".
		for _, h := range inv.Hosts {
			union[h.Name] = true
		}
	}
	var out []*Host
	for _, h := range inv.Hosts {
		if !union[h.Name] {
			continue
		}
		ok := true
		for _, s := range inter {
			ok = ok && s[h.Name]
		}
		for _, s := range excl {
			ok = ok && !s[h.Name]
		}
		if ok {
			out = append(out, h)
		}
	}
	return out, nil
}

// splitLimitColons splits on ':' but keeps "~regex" terms (which may contain ':') whole when
// they are the last term, and does not split inside [..] ranges.
func splitLimitColons(p string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ':':
			if depth == 0 {
				out = append(out, p[start:i])
				start = i + 1
			}
		}
		if i == start && p[i] == '~' {
			break
		}
	}
	return append(out, p[start:])
}

func (inv *Inventory) matchTerm(t string) (map[string]bool, error) {
	set := map[string]bool{}
	addGroup := func(g string) {
		for _, h := range inv.AllHosts(g) {
			set[h.Name] = true
		}
	}
	switch {
	case t == "all" || t == "*":
		addGroup("all")
		return set, nil
	case strings.HasPrefix(t, "~"):
		re, err := regexp.Compile(t[1:])
		if err != nil {
			return nil, fmt.Errorf("limit %q: bad regular expression: %v", t, err)
		}
		for name := range inv.Groups {
			if re.MatchString(name) {
				addGroup(name)
			}
		}
		for _, h := range inv.Hosts {
			if re.MatchString(h.Name) {
				set[h.Name] = true
			}
		}
	case strings.ContainsAny(t, "*?["):
		if _, err := path.Match(t, ""); err != nil {
			return nil, fmt.Errorf("limit %q: bad pattern: %v", t, err)
		}
		for name := range inv.Groups {
			if ok, _ := path.Match(t, name); ok {
				addGroup(name)
			}
		}
		for _, h := range inv.Hosts {
			if ok, _ := path.Match(t, h.Name); ok {
				set[h.Name] = true
			}
		}
	default:
		if _, ok := inv.Groups[t]; ok {
			addGroup(t)
		}
		if h := inv.byName[t]; h != nil {
			set[h.Name] = true
		}
		if len(set) == 0 {
			if _, ok := inv.Groups[t]; ok {
				return set, nil // an existing but empty group is not a typo
			}
		}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("limit: %q matches no host or group in %s", t, inv.Path)
	}
	return set, nil
}
