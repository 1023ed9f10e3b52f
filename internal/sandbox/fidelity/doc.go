// Package fidelity checks the sandbox against third-party clients nobody on this project wrote, used as
// their users use them: k-capehart/go-salesforce (REST, SOQL, sObject Collections, composite, Bulk API 2.0
// queries), Salesforce's own Go Pub/Sub API client (developerforce/pub-sub-api/go: OAuth, GetTopic,
// GetSchema, Subscribe with goavro decoding) and Microsoft's MSAL for Go (the Entra ID client-credentials
// grant). A failure here is a sandbox bug unless the client is at fault; the client-side faults found are
// listed in docs/sandbox-salesforce.md and docs/sandbox-dataverse.md.
//
// The tests run the sandbox as a separate process (crmsync sandbox, built once per test run), trusted
// through SSL_CERT_FILE as a user would add its CA to the system's trust store: the clients use the
// system roots, and the Pub/Sub client's generated code registers the eventbus.v1 protobuf types that the
// sandbox's own server registers too, which one process cannot hold twice. The package has only tests.
package fidelity
