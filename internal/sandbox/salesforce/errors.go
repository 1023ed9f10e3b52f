package salesforce

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// apiError is one REST error (spec 2.5): an HTTP status and the body's objects. REST and Bulk answer every
// error as a JSON array of {"message","errorCode"[,"fields"]}.
type apiError struct {
	Status  int
	Code    string
	Message string
	Fields  []string // nil: the key is absent; empty: "fields": []
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *apiError) withFields(fields ...string) *apiError {
	e.Fields = fields
	return e
}

// restErrorBody is one element of the error array. The key order (message, errorCode, fields) is the
// real one.
type restErrorBody struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields,omitempty"`
}

func writeAPIError(w http.ResponseWriter, errs ...*apiError) {
	body := make([]restErrorBody, len(errs))
	for i, e := range errs {
		body[i] = restErrorBody{Message: e.Message, ErrorCode: e.Code, Fields: e.Fields}
	}
	writeJSONValue(w, errs[0].Status, body)
}

func writeJSONValue(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSONBytes(w, status, b)
}

func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Common errors.
var (
	errInvalidSession = &apiError{Status: http.StatusUnauthorized, Code: "INVALID_SESSION_ID", Message: "Session expired or invalid"}
	errNotFound       = &apiError{Status: http.StatusNotFound, Code: "NOT_FOUND", Message: "The requested resource does not exist"}
	errLimitExceeded  = &apiError{Status: http.StatusForbidden, Code: "REQUEST_LIMIT_EXCEEDED", Message: "TotalRequests Limit exceeded."}
)

func errMethodNotAllowed(method string, allowed ...string) *apiError {
	return errorf(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED",
		"HTTP Method '%s' not allowed. Allowed are %s", method, strings.Join(allowed, ","))
}

// faultError writes an injected fault in the shape of the endpoint it hit: OAuth endpoints answer the
// OAuth error object, everything else the REST error array.
func faultError(w http.ResponseWriter, r *http.Request, status int) {
	if strings.HasPrefix(r.URL.Path, "/services/oauth2/") {
		writeJSONValue(w, status, oauthErrorBody{Error: "unknown_error", Description: "retry your request"})
		return
	}
	code := "UNKNOWN_EXCEPTION"
	msg := "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)"
	switch status {
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		code, msg = "SERVER_UNAVAILABLE", "Server temporarily unavailable, please retry"
	case http.StatusTooManyRequests, http.StatusForbidden:
		code, msg = "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded."
	case http.StatusUnauthorized:
		code, msg = errInvalidSession.Code, errInvalidSession.Message
	}
	writeAPIError(w, &apiError{Status: status, Code: code, Message: msg})
}
