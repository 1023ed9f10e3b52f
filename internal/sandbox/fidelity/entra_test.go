package fidelity

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
)

// Microsoft's MSAL for Go, as a Dataverse client authenticates: a confidential client with a secret, the
// tenant's authority (its OpenID configuration read from the sandbox; instance discovery off, since that
// would ask login.microsoftonline.com), the client-credentials grant for <environment>/.default. The token
// then calls WhoAmI. A wrong secret comes back as MSAL's CallErr with 401 and AADSTS7000215.
func TestMSALAcquiresDataverseTokens(t *testing.T) {
	authority := sb.Dataverse.AuthorityURL + "/" + sb.Dataverse.TenantID
	scopes := []string{sb.Dataverse.EnvironmentURL + "/.default"}
	cred, err := confidential.NewCredFromSecret(sb.Dataverse.ClientSecret)
	if err != nil {
		t.Fatal(err)
	}
	app, err := confidential.New(authority, sb.Dataverse.ClientID, cred, confidential.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatalf("confidential.New: %v", err)
	}
	res, err := app.AcquireTokenByCredential(t.Context(), scopes)
	if err != nil {
		t.Fatalf("AcquireTokenByCredential: %v", err)
	}
	if res.AccessToken == "" || !res.ExpiresOn.After(res.Metadata.RefreshOn.Add(-1)) {
		t.Errorf("token result: %+v", res.Metadata)
	}
	// A second call is served from MSAL's cache.
	if again, err := app.AcquireTokenByCredential(t.Context(), scopes); err != nil || again.AccessToken != res.AccessToken {
		t.Errorf("cached token: %v", err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, sb.Dataverse.EnvironmentURL+"/api/data/v9.2/WhoAmI", nil)
	req.Header.Set("Authorization", "Bearer "+res.AccessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var who map[string]any
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &who) != nil || who["UserId"] == nil {
		t.Fatalf("WhoAmI with MSAL's token: %d %s", resp.StatusCode, body)
	}

	bad, _ := confidential.NewCredFromSecret("not the secret")
	wrong, err := confidential.New(authority, sb.Dataverse.ClientID, bad, confidential.WithInstanceDiscovery(false))
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.AcquireTokenByCredential(t.Context(), scopes)
	var callErr msalerrors.CallErr
	if !errors.As(err, &callErr) || callErr.Resp == nil || callErr.Resp.StatusCode != http.StatusUnauthorized || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Errorf("a wrong secret: %v, want MSAL's CallErr with 401 and AADSTS7000215", err)
	}
}
