package dataverse

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// Application users. Dataverse counts its service-protection limits per user, application users included, so
// a sync that writes with several of them (each an app registration in Entra ID, added to the environment as
// an application user) has several budgets. The emulator knows the configured app registration and
// Config.ApplicationUsers more; each signs in with its own client id and secret, as its own systemuser.

// maxApplicationUsers bounds Config.ApplicationUsers: user indexes are 16-bit, and no sync needs more.
const maxApplicationUsers = 64

// appRegistration is an app registration the token endpoint accepts and the systemuser it signs in as.
type appRegistration struct {
	clientID, secret string
	user             uint16 // index in Emulator.users
}

// ApplicationUser is one of the application users added by Config.ApplicationUsers.
type ApplicationUser struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	// UserID is its systemuserid (WhoAmI's UserId).
	UserID string `json:"application_user_id"`
}

func newClientSecret() (string, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "dv~" + hex.EncodeToString(b[:]), nil
}

// addApplicationUsers adds n application users, each with a client id from gen, a random secret and a
// systemuser holding System Administrator (resetSecurity gives every user that role).
func (e *Emulator) addApplicationUsers(n int, gen func() [16]byte) error {
	for i := range n {
		secret, err := newClientSecret()
		if err != nil {
			return err
		}
		appID := gen()
		idx := uint16(len(e.users)) //nolint:gosec // G115: at most 3 + maxApplicationUsers users
		e.users = append(e.users, &user{id: gen(), appID: appID, aadID: gen(), first: "#",
			last: fmt.Sprintf("crmsync sandbox application %d", i+2), domain: fmt.Sprintf("crmsync-app-%d@sandbox.invalid", i+2), accessMode: 4})
		e.apps = append(e.apps, appRegistration{clientID: guidString(appID), secret: secret, user: idx})
	}
	return nil
}

// app returns the app registration of clientID (in any case, as Entra ID compares GUIDs), or nil.
func (e *Emulator) app(clientID string) *appRegistration {
	for i := range e.apps {
		if clientID != "" && strings.EqualFold(e.apps[i].clientID, clientID) {
			return &e.apps[i]
		}
	}
	return nil
}

// ApplicationUsers returns the application users added by Config.ApplicationUsers (not the configured one).
func (e *Emulator) ApplicationUsers() []ApplicationUser {
	out := make([]ApplicationUser, 0, len(e.apps)-1)
	for _, a := range e.apps[1:] {
		out = append(out, ApplicationUser{ClientID: a.clientID, ClientSecret: a.secret, UserID: guidString(e.users[a.user].id)})
	}
	return out
}

// applicationUserIDs lists the added application users without their secrets, for the admin API's summary.
func (e *Emulator) applicationUserIDs() []map[string]string {
	out := []map[string]string{}
	for _, a := range e.ApplicationUsers() {
		out = append(out, map[string]string{"client_id": a.ClientID, "application_user_id": a.UserID})
	}
	return out
}
