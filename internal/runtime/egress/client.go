package egress

import (
	"net/http"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/cafile"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/httpstall"
)

// ServiceClient is the HTTP client of a service's client (Salesforce, Dataverse): TLS 1.2 at least trusting
// the system roots and caFile (cafile), idlePerHost idle connections kept per host, response headers and a
// body that stops arriving halfway bounded by timeout (httpstall: the transport alone would wait for the
// caller's context), and every connection asked to check first (Guard). It has no cookie jar: requests spread
// over a service's web servers only without its affinity cookie.
func ServiceClient(caFile string, idlePerHost int, timeout time.Duration, check Check) (*http.Client, error) {
	tlsCfg, err := cafile.TLSConfig("CA file", caFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConnsPerHost = idlePerHost
	tr.ResponseHeaderTimeout = timeout
	return &http.Client{Transport: Guard(httpstall.Transport(tr, timeout), check)}, nil
}
