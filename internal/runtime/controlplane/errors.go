package controlplane

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

// Stable error codes (api.Error.Code).
const (
	CodeUnauthenticated  = "unauthenticated"
	CodeInvalidJSON      = "invalid_json"
	CodeInvalidArgument  = "invalid_argument"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodePreflightFailed  = "preflight_failed"
	CodeTooLarge         = "too_large"
	CodeLeaseLost        = "lease_lost"
	CodeUnavailable      = "unavailable"
	CodeInternal         = "internal"
)

// apiError is a refusal with its HTTP status; every error answer is {"error": api.Error}.
type apiError struct {
	status int
	body   api.Error
}

func (e *apiError) Error() string { return e.body.Code + ": " + e.body.Message }

func errorf(status int, code, field, format string, args ...any) *apiError {
	return &apiError{status: status, body: api.Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}}
}

func invalid(field, format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, CodeInvalidArgument, field, format, args...)
}

// withDetails attaches structured detail (preflight checks, mapping problems).
func (e *apiError) withDetails(v any) *apiError {
	b, err := json.Marshal(v)
	if err == nil {
		e.body.Details = b
	}
	return e
}

// storeError maps a store error to its answer; field names the input the conflict or absence is about.
func storeError(err error, field string) error {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, CodeNotFound, field, "%s", strings.TrimPrefix(err.Error(), "not found: "))
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, CodeConflict, field, "%s", strings.TrimPrefix(err.Error(), "conflict: "))
	case errors.Is(err, store.ErrLeaseLost):
		return errorf(http.StatusGone, CodeLeaseLost, "lease_id", "%s", strings.TrimPrefix(err.Error(), "lease lost: "))
	}
	return err
}

// decodeJSON reads the body strictly into v: one JSON value, no unknown fields, within the size cap.
func decodeJSON(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return jsonError(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		ae := jsonError(err)
		if strings.HasPrefix(err.Error(), `json: unknown field "`) {
			// encoding/json names only the key; find where it is, so the field reads salesforce.login.
			if path := unknownField(data, reflect.TypeOf(v)); path != "" {
				ae.body.Field, ae.body.Message = path, fmt.Sprintf("unknown field %q", path)
			}
		}
		return ae
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, CodeInvalidJSON, "", "the body holds data after its JSON value")
	}
	return nil
}

// unknownField returns the dotted path of the first member of data that t does not declare ("" when none).
func unknownField(data []byte, t reflect.Type) string {
	var v any
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	return walkUnknown(v, t, "")
}

func walkUnknown(v any, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		switch t.Kind() {
		case reflect.Struct:
			fields := jsonFields(t)
			for _, k := range keys {
				ft, ok := fields[strings.ToLower(k)] // encoding/json matches names without regard to case
				if !ok {
					return join(k)
				}
				if p := walkUnknown(x[k], ft, join(k)); p != "" {
					return p
				}
			}
		case reflect.Map:
			for _, k := range keys {
				if p := walkUnknown(x[k], t.Elem(), join(k)); p != "" {
					return p
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range x {
				if p := walkUnknown(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

// jsonFields maps the lower-cased JSON names of a struct's fields (embedded structs flattened) to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[strings.ToLower(name)] = f.Type
	}
	return out
}

func jsonError(err error) *apiError {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "", "the request body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, CodeInvalidJSON, "", "the request body is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, CodeInvalidJSON, "", "the JSON body ends early")
	case errors.As(err, &se):
		return errorf(http.StatusBadRequest, CodeInvalidJSON, "", "malformed JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		return errorf(http.StatusBadRequest, CodeInvalidJSON, te.Field, "%s must be a JSON %s, not %s", fieldOr(te.Field), te.Type.Kind(), te.Value)
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, `json: unknown field "`); ok {
		name = strings.TrimSuffix(name, `"`)
		return errorf(http.StatusBadRequest, CodeInvalidJSON, name, "unknown field %q", name)
	}
	return errorf(http.StatusBadRequest, CodeInvalidJSON, "", "invalid JSON: %s", strings.TrimPrefix(msg, "json: "))
}

func fieldOr(f string) string {
	if f == "" {
		return "the body"
	}
	return f
}
