package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/app"
)

const accountsUsage = `
account commands (talk to a running hub over HTTPS, trusting only its ca.pem):
  login            log in; keeps the session token in a 0600 file (--session, env RAMPART_SESSION)
  logout           end the stored session (--everywhere: every session of the account)
  users list | invite EMAIL ROLE | role USER_ID ROLE | remove USER_ID | reset-link USER_ID
  users invitations | revoke-invitation INVITATION_ID
  tokens list | create --name N --scopes S1,S2 [--expires-in 720h | --never-expires] | revoke TOKEN_ID
`

// runAccounts handles login, logout, users and tokens. args are the words
// after the command.
func runAccounts(ctx context.Context, cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rampart "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	session := fs.String("session", app.DefaultSessionFile(), "session file (0600)")
	switch cmd {
	case "login":
		hub := fs.String("hub", "https://127.0.0.1:8443", "the hub's HTTPS URL")
		ca := fs.String("ca", "rampart-data/ca.pem", "the hub's root certificate (DATA/ca.pem)")
		email := fs.String("email", "", "your email")
		pwFile := fs.String("password-file", "", "file (0600) holding the password; default: first line of standard input")
		totp := fs.String("totp", "", "code from your authenticator app, or a recovery code")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *email == "" || fs.NArg() > 0 {
			return fmt.Errorf("usage: rampart login --hub URL --ca DATA/ca.pem --email EMAIL [--password-file F] [--totp CODE]")
		}
		if *pwFile == "" {
			fmt.Fprint(stderr, "password (read from standard input): ")
		}
		pw, err := app.ReadSecret(*pwFile, stdin)
		if err != nil {
			return err
		}
		return app.Login(ctx, *hub, *ca, *session, *email, pw, *totp, stdout)
	case "logout":
		every := fs.Bool("everywhere", false, "end every session of the account, not only this one")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return app.Logout(ctx, *session, *every, stdout)
	}
	// users / tokens: a verb, its flags, its arguments.
	if len(args) == 0 {
		return fmt.Errorf("usage:%s", accountsUsage)
	}
	verb, rest := args[0], args[1:]
	name := fs.String("name", "", "token name")
	scopes := fs.String("scopes", "", "comma-separated token scopes (devices:read, devices:write, telemetry:read, commands:write, mqtt:subscribe, metrics:read, journal:read, pki:admin)")
	expires := fs.String("expires-in", "", "token lifetime, e.g. 720h (default 90 days)")
	never := fs.Bool("never-expires", false, "a token without expiry (flagged in lists and the journal)")
	if err := fs.Parse(rest); err != nil {
		return err
	}
	pos := fs.Args()
	need := func(n int, usage string) error {
		if len(pos) != n {
			return fmt.Errorf("usage: rampart %s %s %s", cmd, verb, usage)
		}
		return nil
	}
	call := func(method, path string, body any) error {
		return app.AccountCommand(ctx, *session, method, path, body, stdout)
	}
	esc := url.PathEscape
	switch cmd + " " + verb {
	case "users list":
		return call("GET", "/api/v1/users", nil)
	case "users invite":
		if err := need(2, "EMAIL ROLE"); err != nil {
			return err
		}
		return call("POST", "/api/v1/invitations", api.InviteRequest{Email: pos[0], Role: pos[1]})
	case "users invitations":
		return call("GET", "/api/v1/invitations", nil)
	case "users revoke-invitation":
		if err := need(1, "INVITATION_ID"); err != nil {
			return err
		}
		return call("DELETE", "/api/v1/invitations/"+esc(pos[0]), nil)
	case "users role":
		if err := need(2, "USER_ID ROLE"); err != nil {
			return err
		}
		return call("PATCH", "/api/v1/users/"+esc(pos[0]), api.RoleRequest{Role: pos[1]})
	case "users remove":
		if err := need(1, "USER_ID"); err != nil {
			return err
		}
		return call("DELETE", "/api/v1/users/"+esc(pos[0]), nil)
	case "users reset-link":
		if err := need(1, "USER_ID"); err != nil {
			return err
		}
		return call("POST", "/api/v1/users/"+esc(pos[0])+"/reset-link", nil)
	case "tokens list":
		return call("GET", "/api/v1/tokens", nil)
	case "tokens create":
		if *name == "" || *scopes == "" {
			return fmt.Errorf("usage: rampart tokens create --name N --scopes S1,S2 [--expires-in 720h | --never-expires]")
		}
		return call("POST", "/api/v1/tokens", api.TokenRequest{Name: *name, Scopes: strings.Split(*scopes, ","), ExpiresIn: *expires, NeverExpires: *never})
	case "tokens revoke":
		if err := need(1, "TOKEN_ID"); err != nil {
			return err
		}
		return call("DELETE", "/api/v1/tokens/"+esc(pos[0]), nil)
	}
	return fmt.Errorf("unknown command 'rampart %s %s'\n%s", cmd, verb, accountsUsage)
}
