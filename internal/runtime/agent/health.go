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
	var dae *dataverse.APIError
	if errors.As(err, &dae) {
		switch {
		case dae.Status == http.StatusForbidden:
			if priv, entity := missingPrivilege(dae.Message); priv != "" {
				return fmt.Sprintf("Dataverse refuses the writes: missing privilege %s on %s (HTTP 403; grant it to the connector's team and application user): %s",
					priv, entity, dae.Message), sideDataverse, true
			}
			return "Dataverse refuses access (HTTP 403): " + dae.Message, sideDataverse, true
		case dae.Status == http.StatusUnauthorized:
			return "Dataverse refuses the connector's credentials (HTTP 401): " + dae.Message, sideDataverse, true
		case dae.Status == http.StatusNotFound && !strings.Contains(dae.Path, "("):
			// A collection that does not exist (a single row's 404 is the record's business, not the table's).
			return "Dataverse has no such table (HTTP 404 for " + dae.Path + "): " + dae.Message, sideDataverse, true
		}
		return "", "", false
	}
	var dau *dataverse.AuthError
	if errors.As(err, &dau) {
		if dau.Status >= 400 && dau.Status < 500 && dau.Status != http.StatusTooManyRequests {
			return "Dataverse (Entra ID) refuses the connector's credentials: " + dau.Error(), sideDataverse, true
		}
		return "", "", false
	}
	var sae *salesforce.APIError
	if errors.As(err, &sae) {
		switch {
		case errors.Is(err, salesforce.ErrAPILimit):
			return "", "", false // paused until the budget returns; status says so
		case sae.Status == http.StatusForbidden || strings.HasPrefix(sae.Code, "INSUFFICIENT_ACCESS") || sae.Code == "API_DISABLED_FOR_ORG" ||
			sae.Code == "FUNCTIONALITY_NOT_ENABLED":
			return "Salesforce refuses access (" + sae.Code + "): the integration user lacks a permission: " + sae.Message, sideSalesforce, true
		case sae.Code == "INVALID_FIELD" || sae.Code == "INVALID_TYPE" || (sae.Code == "NOT_FOUND" && !strings.Contains(sae.Path, "/sobjects/")):
			return "Salesforce does not know a mapped object or field (" + sae.Code + "): " + sae.Message, sideSalesforce, true
		case sae.Status == http.StatusUnauthorized:
			return "Salesforce refuses the connector's session (HTTP 401 " + sae.Code + "): " + sae.Message, sideSalesforce, true
		}
		return "", "", false
	}
	var sau *salesforce.AuthError
	if errors.As(err, &sau) {
		if sau.Status >= 400 && sau.Status < 500 && sau.Status != http.StatusTooManyRequests {
			return "Salesforce refuses the connector's credentials: " + sau.Error(), sideSalesforce, true
		}
		return "", "", false
	}
	switch {
	case errors.Is(err, salesforce.ErrMalformedEvent):
		return "a change event cannot be decoded; the table's stream waits at it: " + err.Error(), sideSalesforce, true
	case errors.Is(err, salesforce.ErrJobFailed):
		return "the Salesforce Bulk query failed: " + err.Error(), sideSalesforce, true
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.PermissionDenied, codes.Unauthenticated:
			return "the Salesforce Pub/Sub API refuses the subscription (" + st.Code().String() + "): " + st.Message(), sideSalesforce, true
		case codes.NotFound:
			return "the Salesforce Pub/Sub API has no such change topic: " + st.Message(), sideSalesforce, true
		}
	}
	return "", "", false
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
