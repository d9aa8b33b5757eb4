package inventory

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns yaml.v3's "yaml: line N: msg" into file:line: msg.
func yamlError(path string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return &Error{Pos: Pos{File: path}, Msg: te.Error()}
	}
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{Pos: Pos{path, n}, Msg: "invalid YAML: " + m[2]}
	}
	return &Error{Pos: Pos{File: path}, Msg: "invalid YAML: " + err.Error()}
}

// parseYAML reads Ansible's YAML inventory format:
//
//	all:
//	  vars: {...}
//	  hosts: {name: {vars...} | null}
//	  children: {group: {hosts/vars/children} | null}
//
// Top-level keys other than all are groups (children of all), as in Ansible.
func parseYAML(path string, data []byte) (*rawInv, error) {
	r := newRaw(path)
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlError(path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return r, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return r, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, errorf(Pos{path, root.Line}, "inventory must be a mapping with a top-level \"all:\" group, got %s", kindName(root))
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, errorf(Pos{path, k.Line}, "group name must be a string")
		}
		switch k.Value {
		case "hosts", "vars", "children":
			return nil, errorf(Pos{path, k.Line}, "unknown top-level key %q: it belongs under a group (\"all:\\n  %s: ...\")", k.Value, k.Value)
		}
		if l, dup := seen[k.Value]; dup {
			return nil, errorf(Pos{path, k.Line}, "group %q defined twice at top level (first at line %d)", k.Value, l)
		}
		seen[k.Value] = k.Line
		if err := r.yamlGroup(k.Value, k, v, nil); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *rawInv) yamlGroup(name string, key, n *yaml.Node, stack []string) error {
	p := Pos{r.file, key.Line}
	if err := checkGroupName(name); err != nil {
		return errorf(p, "%v", err)
	}
	for _, s := range stack {
		if s == name {
			return errorf(p, "group %q is nested inside itself", name)
		}
	}
	if len(stack) > 64 {
		return errorf(p, "groups nested too deeply")
	}
	g := r.group(name, p)
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return errorf(Pos{r.file, n.Line}, "group %q must be a mapping with hosts/vars/children, got %s", name, kindName(n))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		kp := Pos{r.file, k.Line}
		isNull := v.Kind == yaml.ScalarNode && v.Tag == "!!null"
		switch k.Value {
		case "hosts":
			if isNull {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return errorf(Pos{r.file, v.Line}, "hosts of group %q must be a mapping of host names (\"name:\" per line), got %s", name, kindName(v))
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				hk, hv := v.Content[j], v.Content[j+1]
				hp := Pos{r.file, hk.Line}
				if hk.Kind != yaml.ScalarNode || hk.Value == "" {
					return errorf(hp, "host name in group %q must be a non-empty string", name)
				}
				names, err := expandRange(hk.Value)
				if err != nil {
					return errorf(hp, "host %q: %v", hk.Value, err)
				}
				if hv.Kind == yaml.AliasNode {
					hv = hv.Alias
				}
				var vars map[string]any
				var varLines map[string]int
				if !(hv.Kind == yaml.ScalarNode && hv.Tag == "!!null") {
					if hv.Kind != yaml.MappingNode {
						return errorf(Pos{r.file, hv.Line}, "host %q must map to its variables or be empty, got %s", hk.Value, kindName(hv))
					}
					if vars, varLines, err = r.yamlVars(hv); err != nil {
						return err
					}
				}
				for _, hn := range names {
					if err := checkHostName(hn); err != nil {
						return errorf(hp, "%v", err)
					}
					h := r.host(hn, hp)
					for k2, v2 := range vars {
						h.vars[k2] = v2
						h.varPos[k2] = Pos{r.file, varLines[k2]}
					}
					g.hosts = appendUnique(g.hosts, hn)
				}
			}
		case "vars":
			if isNull {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return errorf(Pos{r.file, v.Line}, "vars of group %q must be a mapping, got %s", name, kindName(v))
			}
			vars, lines, err := r.yamlVars(v)
			if err != nil {
				return err
			}
			for k2, v2 := range vars {
				g.vars[k2] = v2
				g.varPos[k2] = Pos{r.file, lines[k2]}
			}
		case "children":
			if isNull {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return errorf(Pos{r.file, v.Line}, "children of group %q must be a mapping of group names, got %s", name, kindName(v))
			}
			for j := 0; j+1 < len(v.Content); j += 2 {
				ck, cv := v.Content[j], v.Content[j+1]
				if ck.Kind != yaml.ScalarNode {
					return errorf(Pos{r.file, ck.Line}, "child group name in %q must be a string", name)
				}
				if ck.Value == "all" {
					return errorf(Pos{r.file, ck.Line}, "group %q cannot have \"all\" as a child", name)
				}
				if err := r.yamlGroup(ck.Value, ck, cv, append(stack, name)); err != nil {
					return err
				}
				g.children = appendUnique(g.children, ck.Value)
			}
		default:
			return errorf(kp, "unknown key %q in group %q (expected hosts, vars or children; is a host missing its \"hosts:\" parent?)", k.Value, name)
		}
	}
	return nil
}

func (r *rawInv) yamlVars(n *yaml.Node) (map[string]any, map[string]int, error) {
	vars := map[string]any{}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value == "" {
			return nil, nil, errorf(Pos{r.file, k.Line}, "variable name must be a non-empty string")
		}
		if k.Value == "<<" {
			return nil, nil, errorf(Pos{r.file, k.Line}, "YAML merge keys (<<) are not supported in inventories")
		}
		val, err := decodeValue(v)
		if err != nil {
			return nil, nil, errorf(Pos{r.file, v.Line}, "variable %q: %v", k.Value, err)
		}
		vars[k.Value] = val
		lines[k.Value] = k.Line
	}
	return vars, lines, nil
}

// expandRange expands Ansible host ranges: web[01:03].x, db-[a:c], h[1:10:2]; several ranges in
// one name multiply out.
func expandRange(pattern string) ([]string, error) {
	open := -1
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == '[' {
			open = i
			break
		}
	}
	if open < 0 {
		return []string{pattern}, nil
	}
	closeIdx := -1
	for i := open; i < len(pattern); i++ {
		if pattern[i] == ']' {
			closeIdx = i
			break
		}
	}
	if closeIdx < 0 {
		return nil, fmt.Errorf("unclosed [ in host range")
	}
	body := pattern[open+1 : closeIdx]
	parts := splitColon(body)
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fmt.Errorf("host range [%s] must be [start:end] or [start:end:step]", body)
	}
	step := 1
	if len(parts) == 3 {
		s, err := strconv.Atoi(parts[2])
		if err != nil || s < 1 {
			return nil, fmt.Errorf("host range step %q must be a positive integer", parts[2])
		}
		step = s
	}
	start, end := parts[0], parts[1]
	var items []string
	if isDigits(start) && isDigits(end) {
		a, err1 := strconv.Atoi(start)
		b, err2 := strconv.Atoi(end)
		if err1 != nil || err2 != nil || len(start) > 9 || len(end) > 9 {
			return nil, fmt.Errorf("host range [%s] bounds too large", body)
		}
		if a > b {
			return nil, fmt.Errorf("host range [%s] starts after it ends", body)
		}
		if (b-a)/step > 10000 {
			return nil, fmt.Errorf("host range [%s] expands to more than 10000 hosts", body)
		}
		width := 0
		if len(start) > 1 && start[0] == '0' {
			width = len(start)
		}
		for n := a; n <= b; n += step {
			items = append(items, fmt.Sprintf("%0*d", width, n))
		}
	} else if len(start) == 1 && len(end) == 1 && isAlpha(start[0]) && isAlpha(end[0]) {
		if start[0] > end[0] {
			return nil, fmt.Errorf("host range [%s] starts after it ends", body)
		}
		for c := int(start[0]); c <= int(end[0]); c += step {
			items = append(items, string(rune(c)))
		}
	} else {
		return nil, fmt.Errorf("host range [%s] must be numeric ([01:10]) or single letters ([a:f])", body)
	}
	rest, err := expandRange(pattern[closeIdx+1:])
	if err != nil {
		return nil, err
	}
	if len(items)*len(rest) > 10000 {
		return nil, fmt.Errorf("host range expands to more than 10000 hosts")
	}
	out := make([]string, 0, len(items)*len(rest))
	for _, it := range items {
		for _, r := range rest {
			out = append(out, pattern[:open]+it+r)
		}
	}
	return out, nil
}

func splitColon(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
