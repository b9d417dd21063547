package app

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/secrets"
	"github.com/rampart-iot/rampart/internal/tlsconf"
)

// The CLI's account commands (rampart login, users, tokens) talk to a hub's
// HTTPS API, trusting only the hub's ca.pem, and keep the session token in
// a 0600 file.

// sessionFileData is what `rampart login` stores.
type sessionFileData struct {
	Hub       string `json:"hub"`        // https://HOST:PORT
	CAFile    string `json:"ca_file"`    // the hub's ca.pem
	Token     string `json:"token"`      // the session token
	ExpiresAt string `json:"expires_at"` // absolute expiry
}

// DefaultSessionFile is $RAMPART_SESSION, or rampart/session.json in the
// user's configuration folder.
func DefaultSessionFile() string {
	if p := os.Getenv("RAMPART_SESSION"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "rampart", "session.json")
}

// apiClient is an HTTPS client for one hub.
type apiClient struct {
	hub   string
	token string
	http  *http.Client
}

func newAPIClient(hub, caFile, token string) (*apiClient, error) {
	if !strings.HasPrefix(hub, "https://") {
		return nil, fmt.Errorf("hub %q must be an https:// URL, like https://127.0.0.1:8443", hub)
	}
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the hub's CA certificate: %w (give it with --ca DATA/ca.pem)", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	cfg, err := tlsconf.Client(tlsconf.ClientOptions{RootCAs: pool})
	if err != nil {
		return nil, err
	}
	return &apiClient{hub: strings.TrimRight(hub, "/"), token: token,
		http: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: 60 * time.Second}}, nil
}

// call sends one request; a non-2xx answer becomes an error with the API's
// message.
func (c *apiClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.hub+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e api.ErrorBody
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			if ra := resp.Header.Get("Retry-After"); ra != "" {
				return fmt.Errorf("%s (%s; retry after %ss)", e.Error.Message, e.Error.Code, ra)
			}
			return fmt.Errorf("%s (%s)", e.Error.Message, e.Error.Code)
		}
		return fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if out != nil && len(raw) > 0 {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// ReadSecret reads a password: the first line of file (which must not be
// readable by others), or of in when file is "".
func ReadSecret(file string, in io.Reader) (secrets.Text, error) {
	if file != "" {
		fi, err := os.Stat(file)
		if err != nil {
			return "", err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return "", fmt.Errorf("password file %s is readable by others (mode %#o); run chmod 600 %s", file, fi.Mode().Perm(), file)
		}
		f, err := os.Open(file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		in = f
	}
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password given: pipe it on standard input or use --password-file FILE")
	}
	return secrets.Text(line), nil
}

// Login logs in to hub and stores the session token in sessionFile (0600).
func Login(ctx context.Context, hub, caFile, sessionFile, email string, password secrets.Text, totp string, out io.Writer) error {
	caAbs, err := filepath.Abs(caFile)
	if err != nil {
		return err
	}
	c, err := newAPIClient(hub, caAbs, "")
	if err != nil {
		return err
	}
	var lr api.LoginResponse
	if err := c.call(ctx, "POST", "/api/v1/login", api.LoginRequest{Email: email, Password: password.Reveal(), TOTP: totp}, &lr); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(sessionFileData{Hub: c.hub, CAFile: caAbs, Token: lr.Token, ExpiresAt: lr.ExpiresAt}, "", "  ")
	if err := os.MkdirAll(filepath.Dir(sessionFile), 0o700); err != nil {
		return err
	}
	if err := writeFileAtomic(sessionFile, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", sessionFile, err)
	}
	fmt.Fprintf(out, "logged in to %s as %s; session in %s until %s\n", c.hub, email, sessionFile, lr.ExpiresAt)
	return nil
}

func loadSession(sessionFile string) (*apiClient, error) {
	fi, err := os.Stat(sessionFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("not logged in (no %s); run 'rampart login --hub https://HOST:PORT --ca DATA/ca.pem --email EMAIL' first", sessionFile)
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("session file %s is readable by others (mode %#o); run chmod 600 %s, or log in again", sessionFile, fi.Mode().Perm(), sessionFile)
	}
	b, err := os.ReadFile(sessionFile)
	if err != nil {
		return nil, err
	}
	var s sessionFileData
	if err := json.Unmarshal(b, &s); err != nil || s.Token == "" {
		return nil, fmt.Errorf("session file %s is damaged; log in again", sessionFile)
	}
	return newAPIClient(s.Hub, s.CAFile, s.Token)
}

// Logout ends the stored session on the hub and removes the file.
func Logout(ctx context.Context, sessionFile string, everywhere bool, out io.Writer) error {
	c, err := loadSession(sessionFile)
	if err != nil {
		return err
	}
	path := "/api/v1/logout"
	if everywhere {
		path = "/api/v1/logout-all"
	}
	cerr := c.call(ctx, "POST", path, nil, nil)
	if err := os.Remove(sessionFile); err != nil {
		return err
	}
	if cerr != nil {
		fmt.Fprintf(out, "session file removed; the hub said: %v\n", cerr)
		return nil
	}
	fmt.Fprintln(out, "logged out")
	return nil
}

// AccountCommand runs one `rampart users ...` or `rampart tokens ...`
// request with the stored session and prints the answer as JSON (or
// "done" for an empty answer).
func AccountCommand(ctx context.Context, sessionFile, method, path string, body any, out io.Writer) error {
	c, err := loadSession(sessionFile)
	if err != nil {
		return err
	}
	var res json.RawMessage
	if err := c.call(ctx, method, path, body, &res); err != nil {
		return err
	}
	if len(res) == 0 {
		fmt.Fprintln(out, "done")
		return nil
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, res, "", "  "); err != nil {
		return err
	}
	pretty.WriteByte('\n')
	_, err = out.Write(pretty.Bytes())
	return err
}
