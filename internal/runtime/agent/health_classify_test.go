package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// TestErrorsAreClassifiedTransientOrPermanent is the classification table of docs/reliability.md: what
// fails a table (and names the cause whole) and what is retried quietly.
func TestErrorsAreClassifiedTransientOrPermanent(t *testing.T) {
	privilege := "Principal team (Id=9ca4, type=9, roleCount=1, privilegeCount=14, accessMode=0), is missing prvWriteAccount privilege (Id=ce5b) on OTC=1 for entity 'account'. context.Caller=1aca"
	cases := []struct {
		name      string
		err       error
		permanent bool
		side      string
		says      string
	}{
		{"dataverse 403 missing privilege", fmt.Errorf("writing: %w", &writer.TableError{Err: &dataverse.APIError{Status: 403, Code: "0x80040220", Message: privilege}}),
			true, sideDataverse, "missing privilege prvWriteAccount on account"},
		{"dataverse 403 other", &dataverse.APIError{Status: 403, Message: "forbidden"}, true, sideDataverse, "HTTP 403"},
		{"dataverse 401", &dataverse.APIError{Status: 401, Message: "invalid token"}, true, sideDataverse, "credentials"},
		{"dataverse unknown table", &dataverse.APIError{Status: 404, Path: "/api/data/v9.2/new_things", Message: "Resource not found for the segment 'new_things'"}, true, sideDataverse, "no such table"},
		{"dataverse 404 of a row", &dataverse.APIError{Status: 404, Path: "/api/data/v9.2/contacts(1)", Message: "not found"}, false, "", ""},
		{"dataverse 429", &dataverse.APIError{Status: 429}, false, "", ""},
		{"dataverse 503", &dataverse.APIError{Status: 503}, false, "", ""},
		{"dataverse token refused", &dataverse.AuthError{Status: 401, Code: "invalid_client", Description: "AADSTS7000215"}, true, sideDataverse, "AADSTS7000215"},
		{"dataverse token endpoint down", &dataverse.AuthError{Status: 503}, false, "", ""},
		{"salesforce unknown field", &salesforce.APIError{Status: 400, Code: "INVALID_FIELD", Message: "No such column 'Fax__c' on entity 'Contact'"}, true, sideSalesforce, "Fax__c"},
		{"salesforce unknown object", &salesforce.APIError{Status: 400, Code: "INVALID_TYPE", Message: "sObject type 'Foo__c' is not supported"}, true, sideSalesforce, "Foo__c"},
		{"salesforce insufficient access", &salesforce.APIError{Status: 403, Code: "INSUFFICIENT_ACCESS_OR_READONLY", Message: "no access"}, true, sideSalesforce, "permission"},
		{"salesforce daily limit", &salesforce.APIError{Status: 403, Code: "REQUEST_LIMIT_EXCEEDED"}, false, "", ""},
		{"salesforce 503", &salesforce.APIError{Status: 503, Code: "SERVER_UNAVAILABLE"}, false, "", ""},
		{"salesforce token refused", &salesforce.AuthError{Status: 400, Code: "invalid_grant", Description: "user hasn't approved this consumer"}, true, sideSalesforce, "invalid_grant"},
		{"pub/sub permission", fmt.Errorf("subscribing: %w", status.Error(codes.PermissionDenied, "no access to /data/ContactChangeEvent")), true, sideSalesforce, "PermissionDenied"},
		{"pub/sub unknown topic", status.Error(codes.NotFound, "topic /data/FooChangeEvent"), true, sideSalesforce, "no such change topic"},
		{"pub/sub unavailable", status.Error(codes.Unavailable, "connection reset"), false, "", ""},
		{"undecodable event", fmt.Errorf("event 01 on /data/ContactChangeEvent: %w", salesforce.ErrMalformedEvent), true, sideSalesforce, "cannot be decoded"},
		{"network", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, false, "", ""},
		{"cancelled", context.Canceled, false, "", ""},
		{"replay ID expired", salesforce.ErrReplayInvalid, false, "", ""},
	}
	for _, tc := range cases {
		reason, side, permanent := permanentError(tc.err)
		if permanent != tc.permanent || side != tc.side || !strings.Contains(reason, tc.says) {
			t.Errorf("%s: permanent %v side %q reason %q; want %v %q containing %q", tc.name, permanent, side, reason, tc.permanent, tc.side, tc.says)
		}
	}
}
