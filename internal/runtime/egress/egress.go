// Package egress keeps an HTTP client on the hosts its caller allows: Guard wraps a transport so that every
// request, each redirect and each request to a host learnt from an answer included, asks the check first.
// The policy itself (which hosts) is package policy's; the Salesforce and Dataverse clients take the check
// as a function so that they depend on nothing but this. ServiceClient is the whole HTTP client both build on.
package egress

import "net/http"

// Check decides whether a connection to host:port may be made; an error refuses it.
type Check func(host, port string) error

// Port returns a URL's port, the scheme's default when none is written.
func Port(req *http.Request) string {
	if p := req.URL.Port(); p != "" {
		return p
	}
	if req.URL.Scheme == "http" {
		return "80"
	}
	return "443"
}

// Guard wraps rt so that every request asks check first (rt itself when check is nil).
func Guard(rt http.RoundTripper, check Check) http.RoundTripper {
	if check == nil {
		return rt
	}
	return guard{rt: rt, check: check}
}

type guard struct {
	rt    http.RoundTripper
	check Check
}

func (g guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := g.check(req.URL.Hostname(), Port(req)); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	return g.rt.RoundTrip(req)
}
