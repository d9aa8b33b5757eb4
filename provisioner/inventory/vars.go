package inventory

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

type varFile struct {
	pos    Pos
	vars   map[string]any
	varPos map[string]Pos
}

var varExts = map[string]bool{"": true, ".yml": true, ".yaml": true, ".json": true}

// loadVarDir reads group_vars/ or host_vars/: for each name, the files name, name.yml,
// name.yaml, name.json and every file below a folder name/ (lexical order, later wins).
func loadVarDir(dir string) (map[string]varFile, error) {
	out := map[string]varFile{}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		full := filepath.Join(dir, name)
		var files []string
		key := name
		if e.IsDir() {
			err := filepath.WalkDir(full, func(p string, d os.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != full {
					return filepath.SkipDir
				}
				if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") && varExts[strings.ToLower(filepath.Ext(d.Name()))] {
					files = append(files, p)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", full, err)
			}
			sort.Strings(files)
		} else {
			ext := filepath.Ext(name)
			if !varExts[strings.ToLower(ext)] {
				continue
			}
			key = strings.TrimSuffix(name, ext)
			files = []string{full}
		}
		vf, ok := out[key]
		if !ok {
			vf = varFile{pos: Pos{File: full}, vars: map[string]any{}, varPos: map[string]Pos{}}
		}
		for _, f := range files {
			if err := readVarsFile(f, vf.vars, vf.varPos); err != nil {
				return nil, err
			}
		}
		out[key] = vf
	}
	return out, nil
}

func readVarsFile(path string, vars map[string]any, varPos map[string]Pos) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read vars: %w", err)
	}
	return parseVars(path, data, vars, varPos)
}

func parseVars(path string, data []byte, vars map[string]any, varPos map[string]Pos) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return yamlError(path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return errorf(Pos{path, root.Line}, "variables file must be a mapping of name: value, got %s", kindName(root))
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return errorf(Pos{path, k.Line}, "variable name must be a string")
		}
		val, err := decodeValue(v)
		if err != nil {
			return errorf(Pos{path, v.Line}, "variable %q: %v", k.Value, err)
		}
		vars[k.Value] = val
		varPos[k.Value] = Pos{path, k.Line}
	}
	return nil
}

func decodeValue(n *yaml.Node) (any, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	return normalize(v), nil
}

// normalize turns yaml.v3's map[string]interface{} / map[interface{}]... into JSON-friendly values.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalize(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = normalize(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = normalize(x)
		}
		return t
	}
	return v
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("the scalar %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "an empty document"
}

func asString(v any) (string, error) {
	switch t := v.(type) {
	case string:
		return t, nil
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(t), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("not a string: %T", v)
}

func asInt(v any) (int, error) {
	switch t := v.(type) {
	case int:
		return t, nil
	case int64:
		return int(t), nil
	case uint64:
		if t > math.MaxInt32 {
			return 0, fmt.Errorf("%d is too large", t)
		}
		return int(t), nil
	case float64:
		if t != math.Trunc(t) {
			return 0, fmt.Errorf("%v is not an integer", t)
		}
		return int(t), nil
	case string:
		return strconv.Atoi(strings.TrimSpace(t))
	}
	return 0, fmt.Errorf("not an integer: %v", v)
}

func asBool(v any) (bool, error) {
	switch t := v.(type) {
	case bool:
		return t, nil
	case int:
		return t != 0, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "yes", "true", "on", "1", "y":
			return true, nil
		case "no", "false", "off", "0", "n", "":
			return false, nil
		}
	}
	return false, fmt.Errorf("not a boolean: %v", v)
}

// Has reports whether the host has the variable (with a non-null value).
func (h *Host) Has(key string) bool {
	v, ok := h.Vars[key]
	return ok && v != nil
}

// Where returns "file:line" of the variable's winning definition, for error messages.
func (h *Host) Where(key string) string {
	if p, ok := h.VarPos[key]; ok {
		return p.String()
	}
	return h.Pos.String()
}

func (h *Host) varErr(key string, err error) error {
	return errorf(h.VarPos[key], "host %s: variable %s=%v: %v", h.Name, key, h.Vars[key], err)
}

// String returns a variable as a string (numbers and booleans are formatted), or def when unset.
func (h *Host) String(key, def string) string {
	if !h.Has(key) {
		return def
	}
	s, err := asString(h.Vars[key])
	if err != nil {
		return def
	}
	return s
}

// Int returns an integer variable, def when unset, an error naming file:line when malformed.
func (h *Host) Int(key string, def int) (int, error) {
	if !h.Has(key) {
		return def, nil
	}
	n, err := asInt(h.Vars[key])
	if err != nil {
		return def, h.varErr(key, err)
	}
	return n, nil
}

// Bool returns a boolean variable (yes/no/true/false/on/off/1/0), def when unset.
func (h *Host) Bool(key string, def bool) (bool, error) {
	if !h.Has(key) {
		return def, nil
	}
	b, err := asBool(h.Vars[key])
	if err != nil {
		return def, h.varErr(key, err)
	}
	return b, nil
}

// Duration returns a duration variable ("30s", "2m"; a bare number is seconds), def when unset.
func (h *Host) Duration(key string, def time.Duration) (time.Duration, error) {
	if !h.Has(key) {
		return def, nil
	}
	v := h.Vars[key]
	if n, err := asInt(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	s, _ := asString(v)
	d, err := time.ParseDuration(s)
	if err != nil {
		return def, h.varErr(key, err)
	}
	return d, nil
}

// Bytes returns a size variable such as "1g", "512m", "2GiB", "1073741824", def when unset.
func (h *Host) Bytes(key string, def int64) (int64, error) {
	if !h.Has(key) {
		return def, nil
	}
	s, _ := asString(h.Vars[key])
	n, err := ParseBytes(s)
	if err != nil {
		return def, h.varErr(key, err)
	}
	return n, nil
}

// Strings returns a list variable; a scalar becomes a one-element list, a comma-separated
// string is split.
func (h *Host) Strings(key string) []string {
	if !h.Has(key) {
		return nil
	}
	switch t := h.Vars[key].(type) {
	case []any:
		out := make([]string, 0, len(t))
		for _, x := range t {
			s, _ := asString(x)
			out = append(out, s)
		}
		return out
	default:
		s, _ := asString(t)
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
}

// ParseBytes parses sizes like the JVM's -Xmx and Kubernetes' quantities: 1g, 512M, 2GiB, 1.5G.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size")
	}
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') {
		i--
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "b"), "i")
	mult := map[string]float64{"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q is not a number with an optional k/m/g/t unit", s)
	}
	return int64(f * mult), nil
}
