// Package sandbox runs the local Salesforce and Dataverse emulators that crmsync's tests, demo and
// benchmarks use because neither service is reachable here. One Sandbox binds every listener (on fixed ports
// from a base, or random loopback ports), generates throw-away TLS material, starts both emulators and an
// admin API, and describes itself in an Info, written to DIR/sandbox.json by `crmsync sandbox`.
//
// Listeners, from the port base P: Salesforce login P, Salesforce instance P+1, Pub/Sub API gRPC P+2,
// admin API P+3, Dataverse environment P+4, Entra ID authority P+5.
package sandbox

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/certs"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// Options configures Start. The zero value starts on random loopback ports, with TLS, no seed data and
// no files written.
type Options struct {
	// Dir receives sandbox.json, ca.pem and the Salesforce JWT key pair. Empty: nothing is written; the PEM
	// material is only in Info.
	Dir string
	// Host is the address every listener binds; 127.0.0.1 when empty.
	Host string
	// PortBase fixes the ports (see the package comment); 0 picks free ports.
	PortBase int
	// Plaintext serves plain HTTP and gRPC instead of TLS.
	Plaintext bool
	// Seed data for Salesforce, generated deterministically from Seed.
	Contacts, Accounts int
	Seed               int64
	// Logger receives the emulators' logs; discarded when nil.
	Logger *slog.Logger
	// Salesforce and Dataverse let tests override emulator settings (token lifetimes and the like); the
	// sandbox fills in URLs, clock, logger, seed data and the JWT certificate.
	Salesforce salesforce.Config
	Dataverse  dataverse.Config
	// Front, when set, is given each listener's name and bound address and returns the address clients are
	// told to use instead: a fault proxy forwarding to it, in the chaos suite. URLs, token audiences and Info
	// name the returned address, so a client going through the proxy sees a consistent service. Names:
	// salesforce-login, salesforce-instance, pubsub, admin, dataverse, authority.
	Front func(name, addr string) (string, error)
	// DataverseRequest, when set, sees every request of the Dataverse Web API before the emulator serves it
	// (its headers and URL; the body is the emulator's): the chaos suite checks each write's lease tag with it.
	DataverseRequest func(r *http.Request)
}

// SalesforceInfo is the "salesforce" object of sandbox.json.
type SalesforceInfo struct {
	LoginURL     string `json:"login_url"`
	InstanceURL  string `json:"instance_url"`
	PubSubAddr   string `json:"pubsub_addr"`
	APIVersion   string `json:"api_version"`
	OrgID        string `json:"org_id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	// ClientSecretFile holds ClientSecret (mode 0600), for configurations that reference it (client_secret_file).
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	Username         string `json:"username"`
	PrivateKeyFile   string `json:"private_key_file,omitempty"`
	CAFile           string `json:"ca_file,omitempty"`
	// PrivateKeyPEM is the JWT signing key (PKCS#8 PEM), for in-process use.
	PrivateKeyPEM []byte `json:"-"`
}

// DataverseInfo is the "dataverse" object of sandbox.json.
type DataverseInfo struct {
	EnvironmentURL string `json:"environment_url"`
	AuthorityURL   string `json:"authority_url"`
	TenantID       string `json:"tenant_id"`
	ClientID       string `json:"client_id"`
	ClientSecret   string `json:"client_secret"`
	// ClientSecretFile holds ClientSecret (mode 0600), for configurations that reference it (client_secret_file):
	// the quick start does, so that no secret reaches Terraform state.
	ClientSecretFile        string `json:"client_secret_file,omitempty"`
	TeamID                  string `json:"team_id"`
	TeamWithoutPrivilegesID string `json:"team_without_privileges_id"`
	CAFile                  string `json:"ca_file,omitempty"`
	// ApplicationUsers are the environment's application users besides ClientID (Options.Dataverse's
	// ApplicationUsers), each with a service-protection budget of its own.
	ApplicationUsers []DataverseApplicationUser `json:"application_users,omitempty"`
}

// DataverseApplicationUser is one more application user of the Dataverse environment.
type DataverseApplicationUser struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	// ClientSecretFile holds ClientSecret (mode 0600).
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	// UserID is the application user's systemuserid.
	UserID string `json:"application_user_id"`
}

// Info describes a running sandbox; it is the content of sandbox.json.
type Info struct {
	Salesforce SalesforceInfo `json:"salesforce"`
	Dataverse  DataverseInfo  `json:"dataverse"`
	AdminURL   string         `json:"admin_url"`
	Plaintext  bool           `json:"plaintext,omitempty"`
	// CAPEM is the CA that signed the servers' certificate (empty with Plaintext).
	CAPEM []byte `json:"-"`
}

// ReadInfo reads a sandbox.json written by a running sandbox.
func ReadInfo(path string) (*Info, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if info.Salesforce.CAFile != "" {
		if info.CAPEM, err = os.ReadFile(info.Salesforce.CAFile); err != nil {
			return nil, err
		}
	}
	if info.Salesforce.PrivateKeyFile != "" {
		if info.Salesforce.PrivateKeyPEM, err = os.ReadFile(info.Salesforce.PrivateKeyFile); err != nil {
			return nil, err
		}
	}
	return &info, nil
}

// Sandbox is a running pair of emulators.
type Sandbox struct {
	Info       Info
	Clock      *clock.Clock
	Salesforce *salesforce.Emulator
	Dataverse  *dataverse.Emulator

	authority *certs.Authority
	servers   []*http.Server
	grpc      *grpc.Server
	listeners []net.Listener
	wg        sync.WaitGroup
	errs      chan error
	closeOnce sync.Once
}

const (
	portLogin = iota
	portInstance
	portPubSub
	portAdmin
	portDataverse
	portAuthority
	portCount
)

var listenerNames = [portCount]string{"salesforce-login", "salesforce-instance", "pubsub", "admin", "dataverse", "authority"}

// Start binds the listeners, starts both emulators and, when opts.Dir is set, writes its files (sandbox.json
// last, so a reader that sees it sees everything).
func Start(ctx context.Context, opts Options) (_ *Sandbox, err error) {
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Sandbox{Clock: clock.New(), errs: make(chan error, portCount)}
	defer func() { //nolint:contextcheck // shutdown has its own bounded context; ctx may be done already
		if err != nil {
			s.Close()
		}
	}()

	var lc net.ListenConfig
	for i := 0; i < portCount; i++ {
		port := 0
		if opts.PortBase > 0 {
			port = opts.PortBase + i
		}
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(opts.Host, strconv.Itoa(port)))
		if err != nil {
			return nil, fmt.Errorf("binding sandbox listener %d: %w", i, err)
		}
		s.listeners = append(s.listeners, ln)
	}
	scheme := "https"
	if opts.Plaintext {
		scheme = "http"
	} else if s.authority, err = certs.NewAuthority(opts.Host); err != nil {
		return nil, err
	}
	var addrs [portCount]string
	for i, ln := range s.listeners {
		addrs[i] = ln.Addr().String()
		if opts.Front != nil {
			if addrs[i], err = opts.Front(listenerNames[i], addrs[i]); err != nil {
				return nil, fmt.Errorf("fronting sandbox listener %s: %w", listenerNames[i], err)
			}
		}
	}
	url := func(i int) string { return scheme + "://" + addrs[i] }

	jwtKey, err := certs.NewSigningKey("crmsync sandbox connected app")
	if err != nil {
		return nil, err
	}

	sfCfg := opts.Salesforce
	sfCfg.Clock, sfCfg.Logger = s.Clock, logger.With("emulator", "salesforce")
	sfCfg.LoginURL, sfCfg.InstanceURL, sfCfg.PubSubAddr = url(portLogin), url(portInstance), addrs[portPubSub]
	sfCfg.JWTCertificate = jwtKey.Cert
	sfCfg.Seed, sfCfg.Contacts, sfCfg.Accounts = opts.Seed, opts.Contacts, opts.Accounts
	if s.Salesforce, err = salesforce.New(sfCfg); err != nil {
		return nil, fmt.Errorf("starting the Salesforce emulator: %w", err)
	}
	dvCfg := opts.Dataverse
	dvCfg.Clock, dvCfg.Logger = s.Clock, logger.With("emulator", "dataverse")
	dvCfg.EnvironmentURL, dvCfg.AuthorityURL = url(portDataverse), url(portAuthority)
	dvCfg.Seed = opts.Seed
	if s.Dataverse, err = dataverse.New(dvCfg); err != nil {
		return nil, fmt.Errorf("starting the Dataverse emulator: %w", err)
	}

	sf, dv := s.Salesforce.Config(), s.Dataverse.Config()
	s.Info = Info{
		Salesforce: SalesforceInfo{
			LoginURL: sf.LoginURL, InstanceURL: sf.InstanceURL, PubSubAddr: sf.PubSubAddr, APIVersion: sf.APIVersion,
			OrgID: sf.OrgID, ClientID: sf.ClientID, ClientSecret: sf.ClientSecret, Username: sf.Username,
			PrivateKeyPEM: jwtKey.KeyPEM,
		},
		Dataverse: DataverseInfo{
			EnvironmentURL: dv.EnvironmentURL, AuthorityURL: dv.AuthorityURL, TenantID: dv.TenantID,
			ClientID: dv.ClientID, ClientSecret: dv.ClientSecret,
			TeamID: s.Dataverse.TeamID(), TeamWithoutPrivilegesID: s.Dataverse.TeamWithoutPrivilegesID(),
		},
		AdminURL:  url(portAdmin),
		Plaintext: opts.Plaintext,
	}
	for _, u := range s.Dataverse.ApplicationUsers() {
		s.Info.Dataverse.ApplicationUsers = append(s.Info.Dataverse.ApplicationUsers,
			DataverseApplicationUser{ClientID: u.ClientID, ClientSecret: u.ClientSecret, UserID: u.UserID})
	}
	if s.authority != nil {
		s.Info.CAPEM = s.authority.CAPEM
	}

	handlers := map[int]http.Handler{
		portLogin:     s.Salesforce.LoginHandler(),
		portInstance:  s.Salesforce.InstanceHandler(),
		portAdmin:     s.adminHandler(),
		portDataverse: observe(s.Dataverse.APIHandler(), opts.DataverseRequest),
		portAuthority: s.Dataverse.AuthorityHandler(),
	}
	for i, h := range handlers {
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		}
		ln := s.listeners[i]
		if s.authority != nil {
			ln = tls.NewListener(ln, s.authority.ServerTLS())
		}
		s.servers = append(s.servers, srv)
		s.serve(func() error { return srv.Serve(ln) })
	}
	gopts := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.MaxRecvMsgSize(4 << 20),
	}
	if s.authority != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(s.authority.ServerTLS())))
	}
	s.grpc = grpc.NewServer(gopts...)
	s.Salesforce.RegisterGRPC(s.grpc)
	s.serve(func() error { return s.grpc.Serve(s.listeners[portPubSub]) })

	if opts.Dir != "" {
		if err := s.writeFiles(opts.Dir); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Sandbox) serve(run func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := run(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
			s.errs <- err
		}
	}()
}

// Err returns a channel that receives an error if a server stops unexpectedly.
func (s *Sandbox) Err() <-chan error { return s.errs }

// writeFiles writes the CA, the JWT key pair and sandbox.json into dir.
func (s *Sandbox) writeFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	keyFile := filepath.Join(dir, "salesforce-jwt-key.pem")
	if err := writeAtomic(keyFile, s.Info.Salesforce.PrivateKeyPEM, 0o600); err != nil {
		return err
	}
	s.Info.Salesforce.PrivateKeyFile = keyFile
	// The client secrets as files too, as an operator places them on the agents' host.
	type secretFile struct {
		name, secret string
		path         *string
	}
	files := []secretFile{
		{"salesforce-client-secret", s.Info.Salesforce.ClientSecret, &s.Info.Salesforce.ClientSecretFile},
		{"dataverse-client-secret", s.Info.Dataverse.ClientSecret, &s.Info.Dataverse.ClientSecretFile},
	}
	for i := range s.Info.Dataverse.ApplicationUsers {
		u := &s.Info.Dataverse.ApplicationUsers[i]
		files = append(files, secretFile{fmt.Sprintf("dataverse-client-secret-%d", i+2), u.ClientSecret, &u.ClientSecretFile})
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := writeAtomic(p, []byte(f.secret+"\n"), 0o600); err != nil {
			return err
		}
		*f.path = p
	}
	if s.authority != nil {
		caFile := filepath.Join(dir, "ca.pem")
		if err := writeAtomic(caFile, s.authority.CAPEM, 0o644); err != nil {
			return err
		}
		s.Info.Salesforce.CAFile, s.Info.Dataverse.CAFile = caFile, caFile
	}
	b, err := json.MarshalIndent(s.Info, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, "sandbox.json"), append(b, '\n'), 0o600)
}

func writeAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ClientTLS returns a TLS configuration trusting the sandbox's CA (nil with Plaintext).
func (s *Sandbox) ClientTLS() *tls.Config {
	if s.authority == nil {
		return nil
	}
	return s.authority.ClientTLS()
}

// HTTPClient returns an HTTP client that trusts the sandbox's CA.
func (s *Sandbox) HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = s.ClientTLS()
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// Reset restores both emulators to their freshly seeded state and the clock to real time.
func (s *Sandbox) Reset() error {
	s.Clock.Reset()
	return errors.Join(s.Salesforce.Reset(), s.Dataverse.Reset())
}

// Close stops every server and emulator. It is safe to call more than once.
func (s *Sandbox) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range s.servers {
			_ = srv.Shutdown(ctx)
		}
		if s.grpc != nil {
			stopped := make(chan struct{})
			go func() { s.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-ctx.Done():
				s.grpc.Stop()
			}
		}
		for _, ln := range s.listeners {
			_ = ln.Close()
		}
		s.wg.Wait()
		if s.Salesforce != nil {
			s.Salesforce.Close()
		}
		if s.Dataverse != nil {
			s.Dataverse.Close()
		}
	})
	return nil
}

// observe calls see with every request before h serves it (h alone when see is nil).
func observe(h http.Handler, see func(*http.Request)) http.Handler {
	if see == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		see(r)
		h.ServeHTTP(w, r)
	})
}
