package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
)

// Health is honest: an error that retrying cannot fix (a missing privilege, refused credentials, an unknown
// table or column, an event the agent cannot decode) fails the table at its first occurrence, with the whole
// reason, while retrying goes on in the background; the failure clears by itself once the side that failed
// works again. Everything else (the network, 5xx, 429, an expired token, the control plane restarting) is
// transient and retried quietly. docs/reliability.md has the classification table.

// Sides of a table's work; each clears its own failure when it works again, so a table whose writes are
// refused does not flap back to healthy each time it reads a change.
const (
	sideSalesforce = "salesforce"
	sideDataverse  = "dataverse"
)

// tableFailure is a permanent error a table is stuck on.
type tableFailure struct {
	reason string
	since  time.Time
}

// permanentError classifies err: the reason to report and true when retrying cannot fix it (a person
// must), with the side it concerns.
func permanentError(err error) (reason, side string, permanent bool) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "", "", false
	}
	if reason, known := dataverseFailure(err); known {
		return permanentOn(reason, sideDataverse)
	}
	if reason, known := salesforceFailure(err); known {
		return permanentOn(reason, sideSalesforce)
	}
	return "", "", false
}

// permanentOn is permanentError's answer for a classified error: permanent on side when it has a reason.
func permanentOn(reason, side string) (string, string, bool) {
	if reason == "" {
		return "", "", false
	}
	return reason, side, true
}

// dataverseFailure classifies a Dataverse error: known is true when err is one (an API or token error), and
// reason is "" when retrying may fix it.
func dataverseFailure(err error) (reason string, known bool) {
	var dae *dataverse.APIError
	if errors.As(err, &dae) {
		switch {
		case dae.Status == http.StatusForbidden:
			if priv, entity := missingPrivilege(dae.Message); priv != "" {
				return fmt.Sprintf("Dataverse refuses the writes: missing privilege %s on %s (HTTP 403; grant it to the connector's team and application user): %s",
					priv, entity, dae.Message), true
			}
			return "Dataverse refuses access (HTTP 403): " + dae.Message, true
		case dae.Status == http.StatusUnauthorized:
			return "Dataverse refuses the connector's credentials (HTTP 401): " + dae.Message, true
		case dae.Status == http.StatusNotFound && !strings.Contains(dae.Path, "("):
			// A collection that does not exist (a single row's 404 is the record's business, not the table's).
			return "Dataverse has no such table (HTTP 404 for " + dae.Path + "): " + dae.Message, true
		}
		return "", true
	}
	var dau *dataverse.AuthError
	if errors.As(err, &dau) {
		if refusedCredentials(dau.Status) {
			return "Dataverse (Entra ID) refuses the connector's credentials: " + dau.Error(), true
		}
		return "", true
	}
	return "", false
}

// salesforceFailure classifies a Salesforce error (REST, Bulk, token, Pub/Sub, change events) like
// dataverseFailure.
func salesforceFailure(err error) (reason string, known bool) {
	var sae *salesforce.APIError
	if errors.As(err, &sae) {
		return salesforceAPIFailure(err, sae), true
	}
	var sau *salesforce.AuthError
	if errors.As(err, &sau) {
		if refusedCredentials(sau.Status) {
			return "Salesforce refuses the connector's credentials: " + sau.Error(), true
		}
		return "", true
	}
	switch {
	case errors.Is(err, salesforce.ErrMalformedEvent):
		return "a change event cannot be decoded; the table's stream waits at it: " + err.Error(), true
	case errors.Is(err, salesforce.ErrJobFailed):
		return "the Salesforce Bulk query failed: " + err.Error(), true
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.PermissionDenied, codes.Unauthenticated:
			return "the Salesforce Pub/Sub API refuses the subscription (" + st.Code().String() + "): " + st.Message(), true
		case codes.NotFound:
			return "the Salesforce Pub/Sub API has no such change topic: " + st.Message(), true
		}
	}
	return "", false
}

// salesforceAPIFailure is the reason a Salesforce REST or Bulk error needs a person, "" when it does not.
func salesforceAPIFailure(err error, sae *salesforce.APIError) string {
	switch {
	case errors.Is(err, salesforce.ErrAPILimit):
		return "" // paused until the budget returns; status says so
	case sae.Status == http.StatusForbidden || strings.HasPrefix(sae.Code, "INSUFFICIENT_ACCESS") || sae.Code == "API_DISABLED_FOR_ORG" ||
		sae.Code == "FUNCTIONALITY_NOT_ENABLED":
		return "Salesforce refuses access (" + sae.Code + "): the integration user lacks a permission: " + sae.Message
	case sae.Code == "INVALID_FIELD" || sae.Code == "INVALID_TYPE" || (sae.Code == "NOT_FOUND" && !strings.Contains(sae.Path, "/sobjects/")):
		return "Salesforce does not know a mapped object or field (" + sae.Code + "): " + sae.Message
	case sae.Status == http.StatusUnauthorized:
		return "Salesforce refuses the connector's session (HTTP 401 " + sae.Code + "): " + sae.Message
	}
	return ""
}

// refusedCredentials reports whether a token endpoint's status refuses the credentials (a 4xx other than
// throttling) rather than failing for now.
func refusedCredentials(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusTooManyRequests
}

var missingPrivilegeRE = regexp.MustCompile(`missing (prv[A-Za-z0-9_]+) privilege.*?(?:for entity '([A-Za-z0-9_]+)')?`)

// missingPrivilege finds the privilege (and table) a Dataverse access-check failure names.
func missingPrivilege(msg string) (priv, entity string) {
	m := missingPrivilegeRE.FindStringSubmatch(msg)
	if m == nil {
		return "", ""
	}
	entity = m[2]
	if entity == "" {
		if i := strings.Index(msg, "for entity '"); i >= 0 {
			rest := msg[i+len("for entity '"):]
			if j := strings.IndexByte(rest, '\''); j >= 0 {
				entity = rest[:j]
			}
		}
	}
	if entity == "" {
		entity = "the table"
	}
	return m[1], entity
}
