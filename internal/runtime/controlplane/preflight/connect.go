package preflight

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
)

// unresolved is a secret the control plane cannot read on its host; the agent may.
type unresolved struct{ why string }

func (u *unresolved) Error() string { return u.why }

// resolve returns a secret: the stored inline value, else the environment variable or file named by the
// connector, read on this host within the reference policy. A reference the policy does not let this host
// resolve, or that is not there, is an *unresolved error.
func (c *Checker) resolve(field, inline, env, file string) (string, error) {
	switch {
	case inline != "":
		return inline, nil
	case env != "":
		v, err := c.cfg.Refs.Getenv(field+"_env", env)
		if err != nil {
			return "", &unresolved{fmt.Sprintf("%s_env %s is not resolved here (%v); the agent resolves it on its own host", field, env, err)}
		}
		return v, nil
	case file != "":
		b, err := c.cfg.Refs.ReadFile(field+"_file", file)
		if err != nil {
			return "", &unresolved{fmt.Sprintf("%s_file %s is not read here (%v); the agent resolves it on its own host", field, file, err)}
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

// caFile returns a CA file the policy lets this host read, or an *unresolved error.
func (c *Checker) caFile(field, file string) (string, error) {
	if file == "" {
		return "", nil
	}
	if fe := c.cfg.Refs.CheckFile(field, file); fe != nil {
		return "", &unresolved{fmt.Sprintf("%s is not read here (%v); the agent reads it on its own host", field, fe)}
	}
	return file, nil
}

// sides holds one call's clients; nil when that side could not be built.
type sides struct {
	sf       *salesforce.Client
	sfErr    error // why sf is nil or its session failed
	sfUnres  bool  // sfErr is an unresolved secret (a warning, not a failure)
	dv       *dataverse.Client
	dvErr    error
	dvUnres  bool
	sfConfig api.SalesforceSettings
	// dvUsers are the additional Dataverse application users, each with a client of its own for its checks;
	// dvAll writes as the connector's user and every additional one whose secret resolved (nil with dv).
	dvUsers []userSide
	dvAll   *dataverse.Client
}

// userSide is one additional Dataverse application user: its client, or why there is none.
type userSide struct {
	clientID string
	dv       *dataverse.Client
	err      error
	unres    bool
}

func (c *Checker) connect(conn api.Connector, secrets store.Secrets) *sides {
	s := &sides{sfConfig: conn.Salesforce}
	sfc := conn.Salesforce
	var key, sfSecret string
	var errs []error
	if sfc.Auth == salesforce.AuthJWTBearer {
		k, err := c.resolve("salesforce.private_key", secrets["salesforce.private_key"], sfc.PrivateKeyEnv, sfc.PrivateKeyFile)
		key = k
		errs = append(errs, err)
	} else {
		v, err := c.resolve("salesforce.client_secret", secrets["salesforce.client_secret"], sfc.ClientSecretEnv, sfc.ClientSecretFile)
		sfSecret = v
		errs = append(errs, err)
	}
	sfCA, err := c.caFile("salesforce.ca_file", sfc.CAFile)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		s.sfErr = err
		var u *unresolved
		s.sfUnres = errors.As(err, &u)
	} else {
		s.sf, s.sfErr = salesforce.New(salesforce.Config{
			LoginURL: sfc.LoginURL, InstanceURL: sfc.InstanceURL, APIVersion: sfc.APIVersion, Auth: sfc.Auth,
			ClientID: sfc.ClientID, ClientSecret: sfSecret, Username: sfc.Username, PrivateKeyPEM: []byte(key),
			CAFile: sfCA, ClientName: "crmsync-preflight", Timeout: c.cfg.RequestTimeout, MaxRetries: 2,
			CheckHost: c.cfg.Hosts.CheckHost,
		})
	}
	dvc := conn.Dataverse
	dvSecret, err := c.resolve("dataverse.client_secret", secrets["dataverse.client_secret"], dvc.ClientSecretEnv, dvc.ClientSecretFile)
	dvCA, caErr := c.caFile("dataverse.ca_file", dvc.CAFile)
	if err == nil {
		err = caErr
	}
	dvConfig := func(id, secret string, more []dataverse.Credentials) dataverse.Config {
		return dataverse.Config{
			EnvironmentURL: dvc.EnvironmentURL, AuthorityURL: dvc.AuthorityURL, TenantID: dvc.TenantID,
			ClientID: id, ClientSecret: secret, MoreUsers: more, CAFile: dvCA, Timeout: c.cfg.RequestTimeout, MaxRetries: 2,
			CheckHost: c.cfg.Hosts.CheckHost,
		}
	}
	// The checks use one client per user (dv is the connector's own user only); dvAll sends as every user
	// whose secret resolves here, for the work the control plane does itself (backups and restores).
	var more []dataverse.Credentials
	for i, u := range dvc.AdditionalUsers {
		us := userSide{clientID: u.ClientID}
		field := fmt.Sprintf("dataverse.additional_application_users[%d].client_secret", i)
		v, uerr := c.resolve(field, secrets[u.SecretName()], u.ClientSecretEnv, u.ClientSecretFile)
		if uerr == nil {
			uerr = caErr
		}
		if uerr != nil {
			var un *unresolved
			us.err, us.unres = uerr, errors.As(uerr, &un)
		} else {
			more = append(more, dataverse.Credentials{ClientID: u.ClientID, ClientSecret: v})
			us.dv, us.err = dataverse.New(dvConfig(u.ClientID, v, nil))
		}
		s.dvUsers = append(s.dvUsers, us)
	}
	if err != nil {
		s.dvErr = err
		var u *unresolved
		s.dvUnres = errors.As(err, &u)
	} else {
		if s.dv, s.dvErr = dataverse.New(dvConfig(dvc.ClientID, dvSecret, nil)); s.dvErr == nil {
			s.dvAll = s.dv
			if len(more) > 0 {
				s.dvAll, s.dvErr = dataverse.New(dvConfig(dvc.ClientID, dvSecret, more))
			}
		}
	}
	return s
}

func (c *Checker) salesforceCredentials(ctx context.Context, s *sides) api.PreflightCheck {
	ch := api.PreflightCheck{Name: CheckSalesforceCredentials}
	if s.sf == nil {
		if s.sfUnres {
			ch.OK, ch.Warning, ch.Message = true, true, s.sfErr.Error()
			return ch
		}
		ch.Message = "salesforce: " + s.sfErr.Error()
		return ch
	}
	sess, err := s.sf.Session(ctx)
	if err != nil {
		s.sfErr = err
		ch.Message = "salesforce: cannot get a session: " + err.Error()
		return ch
	}
	ch.OK, ch.Message = true, fmt.Sprintf("authenticated to %s (org %s) with %s", sess.InstanceURL, sess.OrgID, s.sfConfig.Auth)
	return ch
}

func (c *Checker) dataverseCredentials(ctx context.Context, s *sides) api.PreflightCheck {
	ch := api.PreflightCheck{Name: CheckDataverseCredentials}
	if s.dv == nil {
		if s.dvUnres {
			ch.OK, ch.Warning, ch.Message = true, true, s.dvErr.Error()
			return ch
		}
		ch.Message = "dataverse: " + s.dvErr.Error()
		return ch
	}
	who, err := s.dv.WhoAmI(ctx)
	if err != nil {
		s.dvErr = err
		ch.Message = "dataverse: WhoAmI failed: " + err.Error()
		return ch
	}
	ch.OK, ch.Message = true, fmt.Sprintf("authenticated to %s as application user %s", s.dv.Config().EnvironmentURL, who.UserID)
	return ch
}
