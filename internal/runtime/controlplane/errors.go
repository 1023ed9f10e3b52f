package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/strictjson"
)

// Stable error codes (api.Error.Code).
const (
	CodeUnauthenticated  = "unauthenticated"
	CodeForbidden        = "forbidden"
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
	case errors.Is(err, store.ErrUnauthenticated):
		return errorf(http.StatusUnauthorized, CodeUnauthenticated, "", "unauthenticated")
	case errors.Is(err, store.ErrLeaseLost):
		return errorf(http.StatusGone, CodeLeaseLost, "lease_id", "%s", strings.TrimPrefix(err.Error(), "lease lost: "))
	}
	return err
}

// decodeJSON reads the body strictly into v (package strictjson): one JSON value of the right shape, names
// exact, no unknown or duplicate member, every required member present, within the size cap.
func decodeJSON(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return jsonError(err)
	}
	err = strictjson.Decode(data, v)
	var missing strictjson.MissingErrors
	var se *strictjson.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &missing):
		return errorf(http.StatusBadRequest, CodeInvalidJSON, missing[0].Field, "%s", missing.Error())
	case errors.As(err, &se):
		return errorf(http.StatusBadRequest, CodeInvalidJSON, se.Field, "%s", se.Message)
	}
	return jsonError(err)
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
