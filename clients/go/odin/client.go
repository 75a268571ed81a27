// Package odin is the Go client library for the Odin suite: one connection to the gateway with a
// typed stub per service, login with automatic access-token refresh, and watch and log streams
// that resume after a dropped connection without losing or repeating anything.
//
//	client, err := odin.Dial("127.0.0.1:8080")
//	err = client.Login(ctx, "ada", password)
//	job, err := client.Scheduler.CreateJob(ctx, &schedulerv1.CreateJobRequest{...})
//	state, err := client.WatchJob(ctx, job.GetJob().GetName(), 0, func(e *schedulerv1.JobEvent) error { ... })
//
// The generated stubs are in the sibling packages gen/odin/<service>/v1.
package odin

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authv1 "odin.local/clients/go/gen/odin/auth/v1"
	midgardv1 "odin.local/clients/go/gen/odin/midgard/v1"
	pipelinesv1 "odin.local/clients/go/gen/odin/pipelines/v1"
	schedulerv1 "odin.local/clients/go/gen/odin/scheduler/v1"
)

// openMethods need no token: sending a stale one must not get in their way.
var openMethods = map[string]bool{
	"/odin.auth.v1.AuthService/Login":            true,
	"/odin.auth.v1.AuthService/RefreshToken":     true,
	"/odin.auth.v1.AuthService/ExchangeApiToken": true,
	"/odin.auth.v1.AuthService/GetJwks":          true,
}

// refreshMargin is how long before its expiry an access token is replaced.
const refreshMargin = time.Minute

// Client is a connection to Odin's gateway (or to one service) with a stub per service.
type Client struct {
	conn      *grpc.ClientConn
	Auth      authv1.AuthServiceClient
	Audit     authv1.AuditServiceClient
	Scheduler schedulerv1.SchedulerServiceClient
	Pipelines pipelinesv1.PipelinesServiceClient
	Midgard   midgardv1.MidgardServiceClient
	tokens    *tokens
}

// Dial connects to address (host:port of the gateway). Plain-text transport unless opts say otherwise.
func Dial(address string, opts ...grpc.DialOption) (*Client, error) {
	t := &tokens{now: time.Now}
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(t.unary),
		grpc.WithChainStreamInterceptor(t.stream),
	}, opts...)
	conn, err := grpc.NewClient(address, all...)
	if err != nil {
		return nil, err
	}
	c := &Client{
		conn:      conn,
		Auth:      authv1.NewAuthServiceClient(conn),
		Audit:     authv1.NewAuditServiceClient(conn),
		Scheduler: schedulerv1.NewSchedulerServiceClient(conn),
		Pipelines: pipelinesv1.NewPipelinesServiceClient(conn),
		Midgard:   midgardv1.NewMidgardServiceClient(conn),
		tokens:    t,
	}
	t.refresh = c.refresh
	return c, nil
}

// Conn is the underlying connection, e.g. for the health service.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Login exchanges a username and password for tokens; later calls refresh the access token by themselves.
func (c *Client) Login(ctx context.Context, username, password string) error {
	reply, err := c.Auth.Login(ctx, &authv1.LoginRequest{Username: username, Password: password})
	if err != nil {
		return err
	}
	c.tokens.set(reply.GetTokens())
	return nil
}

// UseToken sends a fixed bearer token (an access JWT or an `odin_…` API token) on every call.
func (c *Client) UseToken(token string) { c.tokens.setFixed(token) }

// AccessToken is the bearer the next call will send (refreshed first when it is about to expire).
func (c *Client) AccessToken(ctx context.Context) (string, error) { return c.tokens.bearer(ctx) }

func (c *Client) refresh(ctx context.Context, refreshToken string) (*authv1.TokenPair, error) {
	reply, err := c.Auth.RefreshToken(ctx, &authv1.RefreshTokenRequest{RefreshToken: refreshToken})
	if err != nil {
		return nil, err
	}
	return reply.GetTokens(), nil
}

// tokens holds the session and puts `authorization: Bearer …` on every call that needs it.
type tokens struct {
	mu      sync.Mutex
	access  string
	expires time.Time
	renew   string // the refresh token; empty for a fixed token
	now     func() time.Time
	refresh func(context.Context, string) (*authv1.TokenPair, error)
}

func (t *tokens) set(pair *authv1.TokenPair) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.access, t.renew = pair.GetAccessToken(), pair.GetRefreshToken()
	t.expires = pair.GetAccessTokenExpireTime().AsTime()
}

func (t *tokens) setFixed(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.access, t.renew, t.expires = token, "", time.Time{}
}

// errNoSession is returned when the refresh token is refused: the caller must log in again.
var errNoSession = errors.New("odin: the session ended; log in again")

func (t *tokens) bearer(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.renew == "" || t.now().Add(refreshMargin).Before(t.expires) {
		return t.access, nil
	}
	pair, err := t.refresh(ctx, t.renew)
	if err != nil {
		return "", errors.Join(errNoSession, err)
	}
	t.access, t.renew = pair.GetAccessToken(), pair.GetRefreshToken()
	t.expires = pair.GetAccessTokenExpireTime().AsTime()
	return t.access, nil
}

func (t *tokens) withBearer(ctx context.Context, method string) (context.Context, error) {
	if openMethods[method] {
		return ctx, nil
	}
	token, err := t.bearer(ctx)
	if err != nil || token == "" {
		return ctx, err
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), nil
}

func (t *tokens) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, err := t.withBearer(ctx, method)
	if err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (t *tokens) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, err := t.withBearer(ctx, method)
	if err != nil {
		return nil, err
	}
	return streamer(ctx, desc, cc, method, opts...)
}
