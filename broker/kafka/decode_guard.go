package kafka

// Decode guard: a cheap structural pre-check of a request body before it is
// handed to kmsg's generated ReadFrom.
//
// Why: kmsg (v1.15) trusts counts it reads off the wire in two ways that a
// tiny malicious request can exploit:
//
//  1. Tagged-field sections are read as
//     for num := b.Uvarint(); num > 0; num-- { key, size := b.Uvarint(), b.Uvarint(); t.Set(key, b.Span(int(size))) }
//     The count is never compared with the bytes left and the loop never
//     checks b.Ok(): once the reader runs dry every Uvarint/Span returns
//     0/empty without consuming anything, so a count of 2^32-1 at the end
//     of a 23-byte request runs 4 billion iterations, each a map write
//     (measured: 85-105 s of CPU per request on the CI box).
//  2. ArrayLen/CompactArrayLen only check "at least one byte per element"
//     against the bytes left, then make([]Elem, n) up front. Elements are
//     Go structs of 16-80 bytes and arrays nest, so a frame whose arrays
//     each claim every remaining byte allocates ~136x its size before the
//     first element fails to parse (1 MiB frame: 142 MB; at the default
//     socket.request.max.bytes of 100 MiB: ~14 GB, i.e. an OOM kill).
//
// Neither can be fixed around ReadFrom from the outside: the loop count is
// a local of kmsg's code and there is no hook into its reader, and where the
// counts sit depends on the request's schema. Capping frame sizes per API
// would only shrink (2), not (1), and Produce needs big frames anyway.
//
// So before ReadFrom we walk the body with the request's wire schema and
// check every count at exactly the positions kmsg will read it:
//   - a tag section's count may not exceed (bytes left)/2 (a tag is at least
//     a key and a size byte), and every tag must fit;
//   - an array's length times its element's minimum encoded size may not
//     exceed the bytes left, and every element must actually parse;
//   - the Go memory all arrays will take (length x element size, summed)
//     must stay within a budget proportional to the frame, which also covers
//     arrays of zero-byte elements.
// A body that passes is one kmsg decodes in time and memory linear in its
// size; one that fails would have failed ReadFrom anyway (or, for trailing
// nonsense kmsg tolerates, is still walked leniently: trailing bytes are
// ignored, nulls accepted wherever kmsg accepts them).
//
// The schema is not hand-written: it is derived once per (key, version) from
// kmsg itself, by reflection over the request struct plus probing its
// encoder (AppendTo): a field whose change alters the encoding is present in
// that version; one whose change inserts "count 0 -> 1, key, size, bytes"
// into an empty tag section is a tagged field. Tagged primitives are skipped
// by size like unknown tags (kmsg parses them with a reader bounded by the
// tag); tagged structs - Fetch's ReplicaState, tag 1, which kmsg parses in
// every flexible version, tag loop included - are walked like inline ones.
// The tests walk fully populated kmsg encodings of every registered key and
// version, which must consume exactly every byte, so a kmsg upgrade or a new
// API in the registry needs no change here, only a green test run; shapes
// the derivation does not understand fail loudly there (and, at run time,
// close the connection rather than decode unchecked).

import (
	"errors"
	"fmt"
	"reflect"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// decodeAllocBudget bounds the Go memory ReadFrom may allocate for arrays:
// a fixed slack plus a multiple of the body size. Once every element must
// be present, the registered requests reach at most ~21x (64-byte Go structs
// for 3-byte minimal compact elements); the budget is the backstop for
// zero-byte elements, which none of them has today.
func decodeAllocBudget(bodyLen int) int {
	return 1<<20 + 32*bodyLen
}

var errNoSchema = errors.New("no wire schema")

type wireKind uint8

const (
	wFixed  wireKind = iota // size bytes
	wString                 // int16 length (compact: uvarint length+1); < 0 is null
	wBytes                  // int32 length (compact: uvarint length+1); < 0 is null
	wArray                  // int32 count (compact: uvarint count+1), then elems
	wStruct                 // inline fields, then a tag section when flexible
)

type wireField struct {
	kind    wireKind
	size    int          // wFixed
	elem    *wireField   // wArray
	elemMin int          // wArray: elem.minSize, at the schema's flexibility
	goSize  int          // wArray: bytes kmsg allocates per element
	fields  []*wireField // wStruct
	// tags are a wStruct's known tagged fields whose content kmsg parses
	// with loops of its own (struct-valued or array tags), by tag key.
	// Other tags (primitives, unknown keys) are skipped by size.
	tags map[uint32]*wireField
	name string // for errors
}

// minSize is the fewest bytes one value of f takes on the wire.
func (f *wireField) minSize(flexible bool) int {
	switch f.kind {
	case wFixed:
		return f.size
	case wString:
		if flexible {
			return 1
		}
		return 2
	case wBytes, wArray:
		if flexible {
			return 1
		}
		return 4
	default:
		n := 0
		if flexible {
			n = 1 // tag count
		}
		for _, sf := range f.fields {
			n += sf.minSize(flexible)
		}
		return n
	}
}

type schemaKey struct{ key, version int16 }

var schemas sync.Map // schemaKey -> *wireField or error

func requestSchema(key, version int16) (*wireField, error) {
	k := schemaKey{key, version}
	if v, ok := schemas.Load(k); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*wireField), nil
	}
	f, err := deriveSchema(key, version)
	if err != nil {
		schemas.Store(k, err)
		return nil, err
	}
	schemas.Store(k, f)
	return f, nil
}

// guardDecode checks body (the request body after the header) against the
// wire schema of key/version; nil means kmsg may decode it.
func guardDecode(key, version int16, flexible bool, body []byte) error {
	s, err := requestSchema(key, version)
	if err != nil {
		return fmt.Errorf("api key %d v%d: %w", key, version, err)
	}
	w := guardWalker{rd: kbin.Reader{Src: body}, flexible: flexible, budget: decodeAllocBudget(len(body))}
	return w.walk(s)
}

type guardWalker struct {
	rd       kbin.Reader
	flexible bool
	budget   int
	strict   bool // tests: a known tag's content must be consumed exactly
}

func (w *guardWalker) length(int16Len bool) int {
	if w.flexible {
		return int(w.rd.Uvarint()) - 1
	}
	if int16Len {
		return int(w.rd.Int16())
	}
	return int(w.rd.Int32())
}

func (w *guardWalker) walk(f *wireField) error {
	switch f.kind {
	case wFixed:
		w.rd.Span(f.size)
	case wString, wBytes:
		if l := w.length(f.kind == wString); l > 0 {
			w.rd.Span(l)
		}
	case wArray:
		var n int
		if w.flexible {
			n = int(int32(w.rd.Uvarint()) - 1) // as kmsg: int32 arithmetic
		} else {
			n = int(w.rd.Int32())
		}
		if !w.rd.Ok() {
			break
		}
		if n <= 0 {
			return nil // null/empty: kmsg allocates nothing
		}
		left := len(w.rd.Src)
		if n > left || (f.elemMin > 0 && n > left/f.elemMin) {
			return fmt.Errorf("malformed request: %s has %d elements, only %d bytes left", f.name, n, left)
		}
		if w.budget -= n * f.goSize; w.budget < 0 {
			return fmt.Errorf("malformed request: %s (%d elements) exceeds the decode memory budget", f.name, n)
		}
		for i := 0; i < n; i++ {
			if err := w.walk(f.elem); err != nil {
				return err
			}
			if !w.rd.Ok() {
				break
			}
		}
	case wStruct:
		for _, sf := range f.fields {
			if err := w.walk(sf); err != nil {
				return err
			}
			if !w.rd.Ok() {
				break
			}
		}
		if w.flexible && w.rd.Ok() {
			n := w.rd.Uvarint()
			if left := len(w.rd.Src); w.rd.Ok() && uint64(n) > uint64(left/2) {
				return fmt.Errorf("malformed request: %s has %d tagged fields, only %d bytes left", f.name, n, left)
			}
			for ; n > 0 && w.rd.Ok(); n-- {
				key := w.rd.Uvarint()
				size := w.rd.Uvarint()
				if w.rd.Ok() && uint64(size) > uint64(len(w.rd.Src)) {
					return fmt.Errorf("malformed request: %s has a %d-byte tag, only %d bytes left", f.name, size, len(w.rd.Src))
				}
				content := w.rd.Span(int(size))
				if tf := f.tags[key]; tf != nil && w.rd.Ok() {
					// kmsg parses it with a reader over exactly these bytes.
					sub := guardWalker{rd: kbin.Reader{Src: content}, flexible: w.flexible, budget: w.budget, strict: w.strict}
					if err := sub.walk(tf); err != nil {
						return err
					}
					if w.strict && len(sub.rd.Src) != 0 {
						return fmt.Errorf("%s: tag %d: %d bytes left", f.name, key, len(sub.rd.Src))
					}
					w.budget = sub.budget
				}
			}
		}
	}
	if !w.rd.Ok() {
		return fmt.Errorf("malformed request: truncated in %s", f.name)
	}
	return nil
}

// ---- schema derivation -------------------------------------------------

var (
	tagsType = reflect.TypeOf(kmsg.Tags{})
	uuidType = reflect.TypeOf([16]byte{})
)

// schemaProber derives the wire schema of one request version by probing
// kmsg's encoder. Every probe rebuilds the request from defaults with one
// element in each array on the path to the struct being probed.
type schemaProber struct {
	key, version int16
	flexible     bool
}

func deriveSchema(key, version int16) (*wireField, error) {
	req := kmsg.RequestForKey(key)
	if req == nil {
		return nil, errNoSchema
	}
	req.SetVersion(version)
	p := &schemaProber{key: key, version: version, flexible: req.IsFlexible()}
	return p.deriveStruct(reflect.TypeOf(req).Elem(), nil, reflect.TypeOf(req).Elem().Name())
}

// build returns a default request whose arrays along path (field index
// chains) hold one default element, and the struct value at the path's end.
func (p *schemaProber) build(path []int) (kmsg.Request, reflect.Value) {
	req := kmsg.RequestForKey(p.key)
	setDefault(reflect.ValueOf(req))
	req.SetVersion(p.version)
	cur := reflect.ValueOf(req).Elem()
	for _, i := range path {
		fv := cur.Field(i)
		ev := reflect.New(fv.Type().Elem())
		setDefault(ev)
		fv.Set(reflect.Append(reflect.MakeSlice(fv.Type(), 0, 1), ev.Elem()))
		cur = fv.Index(0)
	}
	return req, cur
}

func setDefault(ptr reflect.Value) {
	if d, ok := ptr.Interface().(interface{ Default() }); ok {
		d.Default()
	}
}

func (p *schemaProber) deriveStruct(st reflect.Type, path []int, name string) (*wireField, error) {
	base, _ := p.build(path)
	enc0 := base.AppendTo(nil)
	s := &wireField{kind: wStruct, name: name}
	for i := 0; i < st.NumField(); i++ {
		sf := st.Field(i)
		if !sf.IsExported() || sf.Type == tagsType || (path == nil && sf.Name == "Version") {
			continue
		}
		fname := name + "." + sf.Name
		req, cur := p.build(path)
		if err := p.probe(cur.Field(i)); err != nil {
			return nil, fmt.Errorf("%s: %w", fname, err)
		}
		enc1 := req.AppendTo(nil)
		if string(enc1) == string(enc0) {
			continue // not in this version
		}
		if key, ok := p.taggedAs(enc0, enc1); ok {
			tf, err := p.taggedField(sf.Type, fname)
			if err != nil {
				return nil, err
			}
			if tf != nil {
				if s.tags == nil {
					s.tags = map[uint32]*wireField{}
				}
				s.tags[key] = tf
			}
			continue
		}
		f, err := p.fieldOf(sf.Type, append(path[:len(path):len(path)], i), fname)
		if err != nil {
			return nil, err
		}
		s.fields = append(s.fields, f)
	}
	return s, nil
}

// taggedAs reports whether enc1 is enc0 with one tagged field added to a
// tag section that was empty: at the first difference enc0 has the count 0
// and enc1 the count 1, a key, a size and that many bytes, after which both
// go on identically. Only flexible versions have tags; there no inline
// change looks like this (compact lengths of empty values are 1, and a
// changed fixed-size value does not grow the encoding).
func (p *schemaProber) taggedAs(enc0, enc1 []byte) (uint32, bool) {
	if !p.flexible {
		return 0, false
	}
	d := 0
	for d < len(enc0) && d < len(enc1) && enc0[d] == enc1[d] {
		d++
	}
	if d >= len(enc0) || d >= len(enc1) || enc0[d] != 0 || enc1[d] != 1 {
		return 0, false
	}
	rd := kbin.Reader{Src: enc1[d+1:]}
	key := rd.Uvarint()
	size := rd.Uvarint()
	rd.Span(int(size))
	return key, rd.Ok() && string(rd.Src) == string(enc0[d+1:])
}

// taggedField is the schema of a tagged field's content when kmsg's parse
// of it has loops (struct-valued: a tag section; arrays); nil when it is a
// primitive, which the walk may skip by size.
func (p *schemaProber) taggedField(t reflect.Type, name string) (*wireField, error) {
	switch t.Kind() {
	case reflect.Struct:
		// kmsg encodes and parses a tagged struct's fields unconditionally
		// (no per-version gating inside the tag), then its own tags.
		s := &wireField{kind: wStruct, name: name}
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() || sf.Type == tagsType {
				continue
			}
			if sf.Type.Kind() == reflect.Struct || (sf.Type.Kind() == reflect.Slice && sf.Type.Elem().Kind() == reflect.Struct) {
				return nil, fmt.Errorf("%s.%s: nested structs in a tagged field are not supported by the decode guard", name, sf.Name)
			}
			f, err := p.fieldOf(sf.Type, nil, name+"."+sf.Name)
			if err != nil {
				return nil, err
			}
			s.fields = append(s.fields, f)
		}
		return s, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return nil, nil
		}
		if t.Elem().Kind() == reflect.Struct {
			return nil, fmt.Errorf("%s: tagged array of structs is not supported by the decode guard", name)
		}
		return p.fieldOf(t, nil, name)
	}
	return nil, nil
}

// probe changes fv away from its default.
func (p *schemaProber) probe(fv reflect.Value) error {
	t := fv.Type()
	switch t.Kind() {
	case reflect.Bool:
		fv.SetBool(!fv.Bool())
		return nil
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		fv.SetInt(fv.Int() + 1)
		return nil
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		fv.SetUint(fv.Uint() + 1)
		return nil
	case reflect.Float64:
		fv.SetFloat(fv.Float() + 1)
		return nil
	case reflect.String:
		fv.SetString(fv.String() + "ab")
		return nil
	case reflect.Pointer:
		if t.Elem().Kind() != reflect.String {
			break
		}
		s := "ab"
		if !fv.IsNil() {
			s = fv.Elem().String() + "ab"
		}
		fv.Set(reflect.ValueOf(&s))
		return nil
	case reflect.Array:
		if t != uuidType {
			break
		}
		fv.Index(0).SetUint(fv.Index(0).Uint() + 1)
		return nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			fv.SetBytes(append(fv.Bytes(), 1, 2))
			return nil
		}
		ev := reflect.New(t.Elem())
		setDefault(ev)
		fv.Set(reflect.Append(fv, ev.Elem()))
		return nil
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).IsExported() && t.Field(i).Type != tagsType {
				if p.probe(fv.Field(i)) == nil {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("unsupported field type %v", t)
}

func (p *schemaProber) fieldOf(t reflect.Type, path []int, name string) (*wireField, error) {
	switch t.Kind() {
	case reflect.Bool, reflect.Int8, reflect.Uint8:
		return &wireField{kind: wFixed, size: 1, name: name}, nil
	case reflect.Int16, reflect.Uint16:
		return &wireField{kind: wFixed, size: 2, name: name}, nil
	case reflect.Int32, reflect.Uint32:
		return &wireField{kind: wFixed, size: 4, name: name}, nil
	case reflect.Int64, reflect.Uint64, reflect.Float64:
		return &wireField{kind: wFixed, size: 8, name: name}, nil
	case reflect.Array: // uuid
		return &wireField{kind: wFixed, size: 16, name: name}, nil
	case reflect.String, reflect.Pointer:
		return &wireField{kind: wString, name: name}, nil
	case reflect.Slice:
		et := t.Elem()
		if et.Kind() == reflect.Uint8 {
			return &wireField{kind: wBytes, name: name}, nil
		}
		var elem *wireField
		var err error
		if et.Kind() == reflect.Struct {
			elem, err = p.deriveStruct(et, path, name)
		} else {
			elem, err = p.fieldOf(et, nil, name)
		}
		if err != nil {
			return nil, err
		}
		return &wireField{kind: wArray, elem: elem, elemMin: elem.minSize(p.flexible), goSize: int(et.Size()), name: name}, nil
	case reflect.Struct:
		return nil, fmt.Errorf("%s: inline struct-valued field in v%d is not supported by the decode guard", name, p.version)
	}
	return nil, fmt.Errorf("%s: unsupported field type %v", name, t)
}
