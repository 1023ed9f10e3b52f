// Package strictjson decodes JSON the way a careful API does, for the control plane's requests and the
// agent's configuration file:
//
//   - member names match a struct's JSON names exactly (encoding/json would also take "ACTIVE" for "active");
//   - a member given twice in one object, in any case ({"active":false,"ACTIVE":true}), is refused instead of
//     the last one silently winning; map keys too;
//   - a member unknown to the type is refused, named by its path (salesforce.login);
//   - a member the type marks `crmsync:"required"` must be present and not null, so {} or null cannot stand
//     for "false" or "empty";
//   - one JSON value, nothing after it.
//
// Types that decode themselves (time.Time, json.RawMessage, api.Duration) are checked by their own
// UnmarshalJSON; values typed as interfaces are not walked.
package strictjson

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"sync"
)

// Kind classifies a refusal.
type Kind int

// Kinds of refusal.
const (
	Syntax    Kind = iota // not JSON, or more than one value
	Type                  // a value of the wrong JSON type
	Unknown               // a member the type does not declare (or declares in another case)
	Duplicate             // a member or map key given twice (in any case)
	Missing               // a required member absent or null
)

// Error is one refusal; Field is the dotted path of the member ("" for the whole body).
type Error struct {
	Kind    Kind
	Field   string
	Message string
	// Err is encoding/json's error behind a Syntax or Type refusal, when there is one.
	Err error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// MissingErrors lists every required member left out, when that is all that is wrong.
type MissingErrors []*Error

func (m MissingErrors) Error() string {
	msgs := make([]string, len(m))
	for i, e := range m {
		msgs[i] = e.Message
	}
	return strings.Join(msgs, "; ")
}

// Decode decodes data into v (a pointer to a struct, map or slice). The first problem with the JSON's
// shape (syntax, type, unknown or duplicate member) is returned as an *Error; when the shape is right but
// required members are missing, all of them come back as MissingErrors, after v was filled.
func Decode(data []byte, v any) error {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return &Error{Kind: Type, Message: "strictjson: Decode needs a pointer"}
	}
	w := &walker{dec: json.NewDecoder(bytes.NewReader(data))}
	w.dec.UseNumber()
	null, err := w.value(t.Elem(), "")
	if err != nil {
		return err
	}
	if null && isObject(t.Elem()) {
		return &Error{Kind: Type, Message: "the body must be a JSON object, not null"}
	}
	if _, err := w.dec.Token(); !errors.Is(err, io.EOF) {
		return &Error{Kind: Syntax, Message: "the body holds data after its JSON value"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return &Error{Kind: Type, Field: te.Field, Err: err,
				Message: fmt.Sprintf("%s must be a JSON %s, not %s", fieldOr(te.Field), te.Type.Kind(), te.Value)}
		}
		// A type's own UnmarshalJSON refused its value (a duration that does not parse, a bad time).
		return &Error{Kind: Type, Err: err, Message: "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	if len(w.missing) > 0 {
		return w.missing
	}
	return nil
}

func isObject(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct || t.Kind() == reflect.Map
}

func fieldOr(f string) string {
	if f == "" {
		return "the body"
	}
	return f
}

type walker struct {
	dec     *json.Decoder
	missing MissingErrors
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// leaf reports whether values of t decode themselves and are not walked.
func leaf(t reflect.Type) bool {
	return t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler) && t.Kind() != reflect.Map
}

func (w *walker) token() (json.Token, error) {
	tok, err := w.dec.Token()
	if err != nil {
		var se *json.SyntaxError
		switch {
		case errors.Is(err, io.EOF):
			return nil, &Error{Kind: Syntax, Err: err, Message: "the request body is empty; a JSON value is required"}
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, &Error{Kind: Syntax, Err: err, Message: "the JSON ends early"}
		case errors.As(err, &se):
			return nil, &Error{Kind: Syntax, Err: err, Message: fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, se.Error())}
		}
		return nil, &Error{Kind: Syntax, Err: err, Message: "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	return tok, nil
}

// value walks one JSON value expected to decode into t; it reports whether the value was null.
func (w *walker) value(t reflect.Type, path string) (null bool, err error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if leaf(t) {
		return w.skip()
	}
	tok, err := w.token()
	if err != nil {
		return false, err
	}
	switch tok {
	case nil:
		return true, nil
	case json.Delim('{'):
		switch t.Kind() {
		case reflect.Struct:
			return false, w.object(t, path)
		case reflect.Map:
			return false, w.mapValue(t, path)
		}
		return false, &Error{Kind: Type, Field: path, Message: fmt.Sprintf("%s must be a JSON %s, not an object", fieldOr(path), jsonKind(t))}
	case json.Delim('['):
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			return false, &Error{Kind: Type, Field: path, Message: fmt.Sprintf("%s must be a JSON %s, not an array", fieldOr(path), jsonKind(t))}
		}
		for i := 0; w.dec.More(); i++ {
			if _, err := w.value(t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return false, err
			}
		}
		_, err := w.token() // ]
		return false, err
	}
	// A scalar: its type is encoding/json's to check (with the field named); objects and arrays are not
	// scalars.
	if t.Kind() == reflect.Struct || t.Kind() == reflect.Map {
		return false, &Error{Kind: Type, Field: path, Message: fmt.Sprintf("%s must be a JSON object", fieldOr(path))}
	}
	return false, nil
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	}
	return "number"
}

// skip consumes one value whole; it reports whether the value was null.
func (w *walker) skip() (bool, error) {
	tok, err := w.token()
	if err != nil {
		return false, err
	}
	if tok == nil {
		return true, nil
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return false, nil
	}
	if d == '}' || d == ']' {
		return false, &Error{Kind: Syntax, Message: "malformed JSON"}
	}
	for depth := 1; depth > 0; {
		tok, err := w.token()
		if err != nil {
			return false, err
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
	}
	return false, nil
}

// member reads the name of an object's next member and notes it in seen (lower-cased name → the name as
// first given); dup says the name, in any case, was given before, and first is that earlier name.
func (w *walker) member(seen map[string]string) (key, first string, dup bool, err error) {
	tok, err := w.token()
	if err != nil {
		return "", "", false, err
	}
	key, _ = tok.(string)
	if first, dup = seen[strings.ToLower(key)]; !dup {
		seen[strings.ToLower(key)] = key
	}
	return key, first, dup, nil
}

func (w *walker) object(t reflect.Type, path string) error {
	fs := fieldsOf(t)
	seen := map[string]string{} // lower-cased name → the name as given
	present := map[string]bool{}
	for w.dec.More() {
		key, first, dup, err := w.member(seen)
		if err != nil {
			return err
		}
		if dup {
			msg := fmt.Sprintf("member %q is given twice", join(path, key))
			if first != key {
				msg = fmt.Sprintf("member %q is given twice (as %q and %q; names are case-sensitive)", join(path, first), first, key)
			}
			return &Error{Kind: Duplicate, Field: join(path, key), Message: msg}
		}
		f, ok := fs.byName[key]
		if !ok {
			msg := fmt.Sprintf("unknown field %q", join(path, key))
			if exact, ok := fs.byLower[strings.ToLower(key)]; ok {
				msg += fmt.Sprintf(" (names are case-sensitive: %q)", join(path, exact))
			}
			return &Error{Kind: Unknown, Field: join(path, key), Message: msg}
		}
		null, err := w.value(f.typ, join(path, key))
		if err != nil {
			return err
		}
		present[key] = !null
	}
	if _, err := w.token(); err != nil { // }
		return err
	}
	for _, name := range fs.required {
		if !present[name] {
			w.missing = append(w.missing, &Error{Kind: Missing, Field: join(path, name), Message: join(path, name) + " is required"})
		}
	}
	return nil
}

func (w *walker) mapValue(t reflect.Type, path string) error {
	seen := map[string]string{}
	for w.dec.More() {
		key, first, dup, err := w.member(seen)
		if err != nil {
			return err
		}
		if dup {
			return &Error{Kind: Duplicate, Field: join(path, key),
				Message: fmt.Sprintf("key %q of %s is given twice (as %q and %q)", key, fieldOr(path), first, key)}
		}
		if _, err := w.value(t.Elem(), join(path, key)); err != nil {
			return err
		}
	}
	_, err := w.token() // }
	return err
}

// fields is what the walker knows of a struct type.
type fields struct {
	byName   map[string]field
	byLower  map[string]string
	required []string // sorted
}

type field struct {
	typ reflect.Type
}

var cache sync.Map // reflect.Type → *fields

// fieldsOf maps a struct's JSON names to their types, embedded structs flattened as encoding/json does; a
// field tagged `crmsync:"required"` is required.
func fieldsOf(t reflect.Type) *fields {
	if f, ok := cache.Load(t); ok {
		return f.(*fields)
	}
	fs := &fields{byName: map[string]field{}, byLower: map[string]string{}}
	collect(t, fs)
	sort.Strings(fs.required)
	cache.Store(t, fs)
	return fs
}

func collect(t reflect.Type, fs *fields) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collect(ft, fs)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fs.byName[name] = field{typ: f.Type}
		fs.byLower[strings.ToLower(name)] = name
		if f.Tag.Get("crmsync") == "required" {
			fs.required = append(fs.required, name)
		}
	}
}

// Required lists the JSON names of t's required members (t a struct or a pointer to one), sorted; for
// tests that compare them with a schema.
func Required(t reflect.Type) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return append([]string(nil), fieldsOf(t).required...)
}
