package inventory

import (
	"fmt"
	"strconv"
	"strings"
)

// parseINI reads Ansible's INI inventory format: [group] host lines with inline k=v,
// [group:vars] k=v lines, [group:children] group names, hosts before any section are ungrouped.
func parseINI(path string, data []byte) (*rawInv, error) {
	r := newRaw(path)
	const (
		secHosts = iota
		secVars
		secChildren
	)
	kind, group := secHosts, "ungrouped"
	text := strings.TrimPrefix(string(data), "\ufeff")
	for i, line := range strings.Split(text, "\n") {
		p := Pos{path, i + 1}
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' && isSectionHeader(line) {
			end := strings.IndexByte(line, ']')
			head := strings.TrimSpace(line[1:end])
			if rest := strings.TrimSpace(line[end+1:]); rest != "" && rest[0] != '#' && rest[0] != ';' {
				return nil, errorf(p, "unexpected text %q after section header", rest)
			}
			name, suffix := head, ""
			if c := strings.LastIndexByte(head, ':'); c >= 0 {
				name, suffix = head[:c], head[c+1:]
			}
			if err := checkGroupName(name); err != nil {
				return nil, errorf(p, "%v", err)
			}
			switch suffix {
			case "", "hosts":
				kind = secHosts
			case "vars":
				kind = secVars
			case "children":
				kind = secChildren
			default:
				return nil, errorf(p, "unknown section type %q in [%s] (expected :vars or :children)", suffix, head)
			}
			group = name
			if kind != secChildren && suffix != "vars" {
				r.group(name, p)
			} else if r.groups[name] == nil {
				r.group(name, p)
			}
			continue
		}
		switch kind {
		case secChildren:
			child := line
			if j := strings.IndexAny(child, "#;"); j >= 0 {
				child = strings.TrimSpace(child[:j])
			}
			if child == "" || strings.ContainsAny(child, " \t=") {
				return nil, errorf(p, "[%s:children] expects one group name per line, got %q", group, line)
			}
			if err := checkGroupName(child); err != nil {
				return nil, errorf(p, "%v", err)
			}
			if child == "all" {
				return nil, errorf(p, "group %q cannot have \"all\" as a child", group)
			}
			if child == group {
				return nil, errorf(p, "group %q cannot be its own child", group)
			}
			r.group(child, p)
			g := r.groups[group]
			g.children = appendUnique(g.children, child)
		case secVars:
			eq := strings.IndexByte(line, '=')
			if eq <= 0 {
				return nil, errorf(p, "[%s:vars] expects key=value, got %q", group, line)
			}
			k := strings.TrimSpace(line[:eq])
			if k == "" || strings.ContainsAny(k, " \t") {
				return nil, errorf(p, "invalid variable name %q", k)
			}
			g := r.groups[group]
			g.vars[k] = unquote(strings.TrimSpace(line[eq+1:]))
			g.varPos[k] = p
		case secHosts:
			toks, err := splitFields(line)
			if err != nil {
				return nil, errorf(p, "%v", err)
			}
			if len(toks) == 0 {
				continue
			}
			hostTok := toks[0]
			if strings.Contains(hostTok, "=") {
				return nil, errorf(p, "expected a host name first, got %q (variables go after the host or in [%s:vars])", hostTok, group)
			}
			hostTok, port, err := splitHostPort(hostTok)
			if err != nil {
				return nil, errorf(p, "%v", err)
			}
			names, err := expandRange(hostTok)
			if err != nil {
				return nil, errorf(p, "host %q: %v", hostTok, err)
			}
			vars := map[string]any{}
			if port > 0 {
				vars["ansible_port"] = port
			}
			for _, t := range toks[1:] {
				eq := strings.IndexByte(t, '=')
				if eq <= 0 {
					return nil, errorf(p, "host %s: expected key=value, got %q", hostTok, t)
				}
				vars[t[:eq]] = iniLiteral(t[eq+1:])
			}
			g := r.group(group, p)
			for _, hn := range names {
				if err := checkHostName(hn); err != nil {
					return nil, errorf(p, "%v", err)
				}
				h := r.host(hn, p)
				for k, v := range vars {
					h.vars[k] = v
					h.varPos[k] = p
				}
				g.hosts = appendUnique(g.hosts, hn)
			}
		}
	}
	return r, nil
}

func isSectionHeader(line string) bool {
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return false
	}
	rest := strings.TrimSpace(line[end+1:])
	// "[01:03].foo" would be a host range, not a header.
	return rest == "" || rest[0] == '#' || rest[0] == ';' || !strings.ContainsAny(rest[:1], ".-_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

// splitHostPort splits "host:2222" (a colon outside any [range]).
func splitHostPort(tok string) (string, int, error) {
	depth, colon, colons := 0, -1, 0
	for i := 0; i < len(tok); i++ {
		switch tok[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ':':
			if depth == 0 {
				colon = i
				colons++
			}
		}
	}
	if colons != 1 {
		return tok, 0, nil // none, or an IPv6 address
	}
	ps := tok[colon+1:]
	n, err := strconv.Atoi(ps)
	if err != nil || n < 1 || n > 65535 {
		return "", 0, fmt.Errorf("host %q: port %q is not a number 1-65535", tok, ps)
	}
	return tok[:colon], n, nil
}

// splitFields splits a host line shell-style: whitespace separates, quotes group, # starts a
// comment at the beginning of a field.
func splitFields(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inField := false
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '\\' && quote == '"' && i+1 < len(line) {
				i++
				cur.WriteByte(line[i])
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
			inField = true
		case c == ' ' || c == '\t':
			if inField {
				out = append(out, cur.String())
				cur.Reset()
				inField = false
			}
		case c == '#' && !inField:
			return out, nil
		default:
			cur.WriteByte(c)
			inField = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inField {
		out = append(out, cur.String())
	}
	return out, nil
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// iniLiteral interprets inline host values the way Ansible does (Python literals): numbers,
// True/False, None; everything else stays a string.
func iniLiteral(s string) any {
	switch s {
	case "True":
		return true
	case "False":
		return false
	case "None":
		return nil
	}
	if n, err := strconv.Atoi(s); err == nil && isDigits(strings.TrimPrefix(s, "-")) && (len(s) == 1 || s[0] != '0') {
		return n
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && strings.Contains(s, ".") && strings.Count(s, ".") == 1 && isDigits(strings.ReplaceAll(strings.TrimPrefix(s, "-"), ".", "")) {
		return f
	}
	return s
}
