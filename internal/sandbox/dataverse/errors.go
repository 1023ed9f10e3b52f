package dataverse

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
)

// Error codes of spec 6.2 and 7.1 (hex strings, as the Web API sends them).
const (
	codeObjectDoesNotExist  = "0x80040217"
	codeAltKeyNotFound      = "0x80060891"
	codePrivilegeDenied     = "0x80040220"
	codeDuplicateRecord     = "0x80040237"
	codeValidation          = "0x80044331"
	codeSegmentNotFound     = "0x8006088a"
	codeODataParse          = "0x80060888"
	codePayload             = "0x80048d19"
	codeRequestLimit        = "0x80072322"
	codeTimeLimit           = "0x80072321"
	codeConcurrencyLimit    = "0x80072326"
	codeVersionMismatch     = "0x80060882" // ConcurrencyVersionMismatch; not in the spec's table [guess]
	codeInvalidArgument     = "0x80040203" // InvalidArgument; used for read-only columns [guess]
	codeUnexpected          = "0x80040216" // "An unexpected error occurred." [guess]
	codeMessageNotSupported = "0x80040800" // bulk message not enabled for a table [guess]
)

// apiError is a Web API failure: an HTTP status and the {"error":{"code","message"}} body of spec 6.
type apiError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration // 429 only
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message) }

func newError(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func errNotFound(entity string, id [16]byte) *apiError {
	return newError(http.StatusNotFound, codeObjectDoesNotExist, "%s With Id = %s Does Not Exist", entity, guidString(id))
}

func errSegment(name string) *apiError {
	return newError(http.StatusNotFound, codeSegmentNotFound, "Resource not found for the segment '%s'.", name)
}

func errNoProperty(name, typeName string) *apiError {
	return newError(http.StatusBadRequest, codeODataParse, "Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.", name, typeName)
}

// errPayload is the deserialization error Dataverse wraps around ODataLib's message (spec 6.2, 0x80048d19).
func errPayload(set, inner string) *apiError {
	return newError(http.StatusBadRequest, codePayload,
		"Error identified in Payload provided by the user for Entity :'%s', For more information on this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293  ----> InnerException : Microsoft.OData.ODataException: %s", set, inner)
}

func errBadRequest(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, codeODataParse, format, args...)
}

func errMethod(method string) *apiError {
	return newError(http.StatusMethodNotAllowed, codeODataParse, "The requested resource does not support http method '%s'.", method)
}

func errDuplicate(msg string) *apiError {
	return newError(http.StatusPreconditionFailed, codeDuplicateRecord, "%s", msg)
}

func errMaxLength(attr, entity string, max int) *apiError {
	// Two spaces after "occurred." as in the documented message (spec 6.2).
	return newError(http.StatusBadRequest, codeValidation,
		"A validation error occurred.  The length of the '%s' attribute of the '%s' entity exceeded the maximum allowed length of '%d'.", attr, entity, max)
}

func errOutOfRange(attr, entity string, v any) *apiError {
	return newError(http.StatusBadRequest, codeValidation,
		"A validation error occurred.  The value %v of '%s' on record of type '%s' is outside the valid range.", v, attr, entity)
}

// errorBody renders the error object; with annotations requested it carries the extra detail of spec 6.
func errorBody(e *apiError, annotations bool) []byte {
	var b []byte
	b = append(b, `{"error":{"code":`...)
	b = jsonrow.AppendString(b, e.code)
	b = append(b, `,"message":`...)
	b = jsonrow.AppendString(b, e.message)
	if annotations && e.code != "" {
		b = append(b, `,"@Microsoft.PowerApps.CDS.ErrorDetails.OperationStatus":"0","@Microsoft.PowerApps.CDS.HelpLink":`...)
		b = jsonrow.AppendString(b, "http://go.microsoft.com/fwlink/?LinkID=398563&error=Microsoft.Crm.CrmException%3a"+strings.TrimPrefix(e.code, "0x")+"&client=platform")
	}
	b = append(b, "}}"...)
	return b
}

// response is what one operation produces, whether it is answered directly or as a $batch part.
type response struct {
	status int
	header http.Header
	body   []byte
	entity *entityRef // the row a write addressed, for $batch Content-ID references
}

// get reads a header set by set, which keeps Dataverse's spelling (OData-EntityId) rather than Go's
// canonical form.
func (r *response) get(k string) string {
	for name, v := range r.header {
		if strings.EqualFold(name, k) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (r *response) set(k, v string) {
	if r.header == nil {
		r.header = make(http.Header, 4)
	}
	r.header[k] = []string{v}
}

const jsonContentType = "application/json; odata.metadata=minimal"

func jsonResponse(status int, body []byte) response {
	r := response{status: status, body: body}
	r.set("Content-Type", jsonContentType)
	return r
}

func errorResponse(e *apiError, annotations bool) response {
	r := jsonResponse(e.status, errorBody(e, annotations))
	if e.retryAfter > 0 {
		r.set("Retry-After", fmt.Sprint(int64((e.retryAfter+time.Second-1)/time.Second)))
	}
	return r
}
