package api

import (
	"fmt"
	"time"
)

// DataverseRecordsPerSecondPerUser is what one Dataverse application user sustains when loading with bulk
// messages: its service-protection budget (1,200 s of execution time per 5-minute window, per user and web
// server) at about 20 ms of execution per record. Third-party measurements on real environments found about 200
// records/s for one application user and 394 for two; the sandbox models the same (docs/sandbox-dataverse.md).
// Environments with synchronous plug-ins on the table, or wide rows, are slower; several web servers, faster.
const DataverseRecordsPerSecondPerUser = 200

// LoadRateWindow is how far back an agent measures a load's rate: Dataverse's service-protection window, so
// a rate measured over it includes the waits the budget imposes (a shorter one would swing between a throttled
// pause and the burst after it).
const LoadRateWindow = 5 * time.Minute

// loadFixedSalesforceCalls are the Salesforce calls of a table load besides its result pages: describe, count,
// create the Bulk API 2.0 query job and poll its status.
const loadFixedSalesforceCalls = 4

// LoadEstimate is what (re-)syncing a table is expected to cost: the API calls on both sides, and how long the
// writes take at the service-protection budget of the connector's Dataverse application users.
type LoadEstimate struct {
	Records           int64 `json:"records"`
	SalesforceCalls   int64 `json:"salesforce_api_calls"`
	DataverseRequests int64 `json:"dataverse_requests"`
	// ApplicationUsers is how many Dataverse application users share the writes.
	ApplicationUsers int `json:"application_users"`
	// Seconds is the expected duration at those users' budget (DataverseRecordsPerSecondPerUser each).
	Seconds int64 `json:"seconds"`
}

// LoadCost estimates a (re-)sync of records records of one table with the default tuning, written by
// applicationUsers Dataverse application users (at least one): one Bulk API 2.0 query job (its fixed calls,
// then one results call per page of DefaultPageSize records), one Dataverse request per DefaultBatchSize rows,
// and the duration at the users' service-protection budget. The provider's plan warnings, `crmsync
// plan-summary` and the activation's progress quote it.
func LoadCost(records int64, applicationUsers int) LoadEstimate {
	records = max(records, 0)
	applicationUsers = max(applicationUsers, 1)
	perSecond := int64(DataverseRecordsPerSecondPerUser * applicationUsers)
	return LoadEstimate{
		Records:           records,
		SalesforceCalls:   loadFixedSalesforceCalls + (records+DefaultPageSize-1)/DefaultPageSize,
		DataverseRequests: (records + DefaultBatchSize - 1) / DefaultBatchSize,
		ApplicationUsers:  applicationUsers,
		Seconds:           (records + perSecond - 1) / perSecond,
	}
}

// Duration is the expected duration.
func (e LoadEstimate) Duration() time.Duration { return time.Duration(e.Seconds) * time.Second }

// Pace says how long the writes take and why: "about 1 h 24 min at the service-protection budget of 1
// Dataverse application user (about 200 records/s each)".
func (e LoadEstimate) Pace() string {
	users := "1 Dataverse application user"
	if e.ApplicationUsers > 1 {
		users = fmt.Sprintf("%d Dataverse application users", e.ApplicationUsers)
	}
	return fmt.Sprintf("%s at the service-protection budget of %s (about %d records/s each)",
		AboutDuration(e.Duration()), users, DataverseRecordsPerSecondPerUser)
}

// AboutDuration writes an expected duration the way people say it: "under a minute", "about 7 min",
// "about 2 h 5 min", "about 3 days 4 h".
func AboutDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("about %d min", int((d+30*time.Second)/time.Minute))
	case d < 48*time.Hour:
		d = (d + 30*time.Second).Truncate(time.Minute)
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("about %d h", h)
		}
		return fmt.Sprintf("about %d h %d min", h, m)
	}
	d = (d + 30*time.Minute).Truncate(time.Hour)
	return fmt.Sprintf("about %d days %d h", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}
