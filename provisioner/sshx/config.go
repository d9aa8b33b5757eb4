// Package sshx resolves hosts through ssh_config, verifies host keys against known_hosts,
// authenticates with key files and ssh-agent, follows ProxyJump chains and keeps one
// multiplexed connection per host for a whole run.
package sshx

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// sshConfig is an ssh_config evaluator with OpenSSH semantics: files are read top to bottom,
// the first value obtained for a keyword wins (IdentityFile and friends accumulate), Host and
// Match lines start conditional blocks, and Include splices files in place (globs, lexical
// order, relative to ~/.ssh or /etc/ssh), only when the block it sits in applies.
//
// It is written here rather than taken from kevinburke/ssh_config because that library fails
// the whole file on a Match criterion it does not know (Fedora ships "Match final all" in
// /etc/ssh/ssh_config.d/50-redhat.conf), reads Included files without giving the caller a chance
// to skip such blocks, and searches Included files in no defined order. Here an unsupported
// Match block is ignored with a warning and cannot affect hosts it does not concern.
type sshConfig struct {
	files    []*cfgFile
	warnings []string
}

type cfgFile struct {
	path  string
	items []cfgItem
}

type cfgItemKind int

const (
	itemKV cfgItemKind = iota
	itemHost
	itemMatch
	itemInclude
)

type cfgItem struct {
	kind     cfgItemKind
	key      string // lower-case keyword for itemKV
	args     []string
	line     int
	include  []*cfgFile
	criteria []matchCriterion // itemMatch; nil means the block never applies
}

type matchCriterion struct {
	name    string // all, host, originalhost, user, localuser
	negate  bool
	pattern string
}

// multiValued keywords accumulate across matching blocks instead of first-wins.
var multiValued = map[string]bool{
	"identityfile": true, "certificatefile": true, "localforward": true, "remoteforward": true,
	"dynamicforward": true, "sendenv": true, "setenv": true,
}

func loadSSHConfig(paths []string, home string) (*sshConfig, error) {
	c := &sshConfig{}
	for _, p := range paths {
		f, err := c.parseFile(p, home, strings.HasPrefix(filepath.Clean(p), "/etc/ssh"), 0)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, err
		}
		c.files = append(c.files, f)
	}
	return c, nil
}

func (c *sshConfig) warnf(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

func (c *sshConfig) parseFile(path, home string, system bool, depth int) (*cfgFile, error) {
	if depth > 16 {
		return nil, fmt.Errorf("ssh config %s: Include nested too deeply", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return c.parse(path, string(data), home, system, depth)
}

func (c *sshConfig) parse(path, text, home string, system bool, depth int) (*cfgFile, error) {
	f := &cfgFile{path: path}
	for i, raw := range strings.Split(text, "\n") {
		lineNo := i + 1
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || line[0] == '#' {
			continue
		}
		key, rest := splitKeyword(line)
		args, err := splitArgs(rest)
		if err != nil {
			return nil, fmt.Errorf("ssh config %s:%d: %v", path, lineNo, err)
		}
		lkey := strings.ToLower(key)
		switch lkey {
		case "host":
			if len(args) == 0 {
				return nil, fmt.Errorf("ssh config %s:%d: Host needs at least one pattern", path, lineNo)
			}
			f.items = append(f.items, cfgItem{kind: itemHost, args: args, line: lineNo})
		case "match":
			crit, why := parseMatch(args)
			if why != "" {
				c.warnf("ssh config %s:%d: %s; ignoring this Match block", path, lineNo, why)
				crit = nil
			}
			f.items = append(f.items, cfgItem{kind: itemMatch, args: args, line: lineNo, criteria: crit})
		case "include":
			item := cfgItem{kind: itemInclude, args: args, line: lineNo}
			for _, pat := range args {
				full := expandTilde(pat, home)
				if !filepath.IsAbs(full) {
					if system {
						full = filepath.Join("/etc/ssh", pat)
					} else {
						full = filepath.Join(home, ".ssh", pat)
					}
				}
				matches, err := filepath.Glob(full)
				if err != nil {
					return nil, fmt.Errorf("ssh config %s:%d: Include %q: %v", path, lineNo, pat, err)
				}
				sort.Strings(matches)
				for _, m := range matches {
					if st, err := os.Stat(m); err != nil || st.IsDir() {
						continue
					}
					inc, err := c.parseFile(m, home, system, depth+1)
					if err != nil {
						if os.IsNotExist(err) {
							continue
						}
						return nil, err
					}
					item.include = append(item.include, inc)
				}
			}
			f.items = append(f.items, item)
		default:
			if len(args) == 0 {
				return nil, fmt.Errorf("ssh config %s:%d: %s needs a value", path, lineNo, key)
			}
			f.items = append(f.items, cfgItem{kind: itemKV, key: lkey, args: args, line: lineNo})
		}
	}
	return f, nil
}

// splitKeyword splits "Key value", "Key=value" and "Key = value".
func splitKeyword(line string) (string, string) {
	i := strings.IndexAny(line, " \t=")
	if i < 0 {
		return line, ""
	}
	key, rest := line[:i], strings.TrimLeft(line[i:], " \t")
	if strings.HasPrefix(rest, "=") {
		rest = strings.TrimLeft(rest[1:], " \t")
	}
	return key, rest
}

// splitArgs splits arguments on whitespace honouring double quotes; an unquoted # starting an
// argument begins a trailing comment.
func splitArgs(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quoted:
			if ch == '"' {
				quoted = false
			} else {
				cur.WriteByte(ch)
			}
		case ch == '"':
			quoted, in = true, true
		case ch == ' ' || ch == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		case ch == '#' && !in:
			return out, nil
		default:
			cur.WriteByte(ch)
			in = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote")
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

// parseMatch returns the criteria, or a reason the block cannot be evaluated.
func parseMatch(args []string) ([]matchCriterion, string) {
	if len(args) == 0 {
		return nil, "Match without criteria"
	}
	var out []matchCriterion
	for i := 0; i < len(args); i++ {
		a := args[i]
		neg := strings.HasPrefix(a, "!")
		name := strings.ToLower(strings.TrimPrefix(a, "!"))
		switch name {
		case "all":
			out = append(out, matchCriterion{name: "all", negate: neg})
		case "host", "originalhost", "user", "localuser":
			if i+1 >= len(args) {
				return nil, fmt.Sprintf("Match %s needs an argument", name)
			}
			i++
			out = append(out, matchCriterion{name: name, negate: neg, pattern: args[i]})
		default:
			// canonical, final, exec, localnetwork, tagged, version, sessiontype, command...
			return nil, fmt.Sprintf("Match criterion %q is not supported", a)
		}
	}
	return out, ""
}

// matchPatternList matches a comma/space list of patterns with ! negation, as ssh does: any
// negated match rejects, otherwise any positive match accepts.
func matchPatternList(name string, patterns []string) bool {
	matched := false
	for _, p := range patterns {
		for _, q := range strings.Split(p, ",") {
			if q == "" {
				continue
			}
			neg := strings.HasPrefix(q, "!")
			q = strings.TrimPrefix(q, "!")
			if wildMatch(strings.ToLower(q), strings.ToLower(name)) {
				if neg {
					return false
				}
				matched = true
			}
		}
	}
	return matched
}

// wildMatch implements ssh's * and ? patterns.
func wildMatch(pat, s string) bool {
	for len(pat) > 0 {
		switch pat[0] {
		case '*':
			for len(pat) > 0 && pat[0] == '*' {
				pat = pat[1:]
			}
			if pat == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if wildMatch(pat, s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if s == "" {
				return false
			}
			pat, s = pat[1:], s[1:]
		default:
			if s == "" || s[0] != pat[0] {
				return false
			}
			pat, s = pat[1:], s[1:]
		}
	}
	return s == ""
}

// lookupCtx carries what Match criteria can see.
type lookupCtx struct {
	alias     string
	addr      string // ansible_host: also matched by Host patterns, and it is the HostName
	user      string // remote user known so far (inventory), for Match user
	localUser string
}

// lookup evaluates the configuration for alias and returns lower-case keyword -> values (one
// value list per keyword for single-valued keywords; the concatenation for multi-valued ones).
func (c *sshConfig) lookup(lc lookupCtx) map[string][]string {
	out := map[string][]string{}
	for _, f := range c.files {
		c.eval(f, lc, out)
	}
	return out
}

func (c *sshConfig) eval(f *cfgFile, lc lookupCtx, out map[string][]string) {
	active := true
	for _, it := range f.items {
		switch it.kind {
		case itemHost:
			active = matchPatternList(lc.alias, it.args) || lc.addr != "" && matchPatternList(lc.addr, it.args)
		case itemMatch:
			active = it.criteria != nil && matchCriteria(it.criteria, lc, out)
		case itemInclude:
			if active {
				for _, inc := range it.include {
					c.eval(inc, lc, out)
				}
			}
		case itemKV:
			if !active {
				continue
			}
			if multiValued[it.key] {
				out[it.key] = append(out[it.key], strings.Join(it.args, " "))
			} else if _, ok := out[it.key]; !ok {
				out[it.key] = it.args
			}
		}
	}
}

func matchCriteria(crit []matchCriterion, lc lookupCtx, sofar map[string][]string) bool {
	for _, cr := range crit {
		var ok bool
		switch cr.name {
		case "all":
			ok = true
		case "host":
			h := lc.alias
			if lc.addr != "" {
				h = lc.addr
			} else if v := sofar["hostname"]; len(v) > 0 {
				h = expandTokens(v[0], tokenVals{host: lc.alias})
			}
			ok = matchPatternList(h, []string{cr.pattern})
		case "originalhost":
			ok = matchPatternList(lc.alias, []string{cr.pattern})
		case "user":
			u := lc.user
			if u == "" {
				if v := sofar["user"]; len(v) > 0 {
					u = v[0]
				} else {
					u = lc.localUser
				}
			}
			ok = matchPatternList(u, []string{cr.pattern})
		case "localuser":
			ok = matchPatternList(lc.localUser, []string{cr.pattern})
		}
		if cr.negate {
			ok = !ok
		}
		if !ok {
			return false
		}
	}
	return true
}

func expandTilde(p, home string) string {
	if p == "~" {
		return home
	}
	if strings.HasPrefix(p, "~/") {
		return filepath.Join(home, p[2:])
	}
	return p
}

type tokenVals struct {
	host, alias, port, remoteUser, localUser, home, localHost string
}

// expandTokens expands ssh's %h %p %r %u %n %d %l %% tokens; unknown tokens are kept.
func expandTokens(s string, t tokenVals) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case '%':
			b.WriteByte('%')
		case 'h':
			b.WriteString(t.host)
		case 'n':
			b.WriteString(t.alias)
		case 'p':
			b.WriteString(t.port)
		case 'r':
			b.WriteString(t.remoteUser)
		case 'u':
			b.WriteString(t.localUser)
		case 'd':
			b.WriteString(t.home)
		case 'l', 'L':
			b.WriteString(t.localHost)
		default:
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
