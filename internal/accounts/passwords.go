package accounts

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// blocklistGz is the password blocklist: common and breached passwords
// plus dictionary words and names, NFKC-normalised, lower-cased, sorted, one
// a line, gzip-compressed. scripts/blocklist/build.sh builds it from the
// MIT-licensed zxcvbn-ts lists it names (see blocklist.LICENSE.txt and
// blocklist.NOTICE.txt).
//
//go:embed blocklist.txt.gz
var blocklistGz []byte

// blocklist is the decompressed list: one string and the start of each
// entry, searched by bisection (about 2 MB in memory, loaded on first use).
type blocklist struct {
	all    string
	starts []int32
}

var loadBlocklist = sync.OnceValue(func() *blocklist {
	zr, err := gzip.NewReader(bytes.NewReader(blocklistGz))
	if err != nil {
		panic("accounts: embedded blocklist is corrupt: " + err.Error())
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		panic("accounts: embedded blocklist is corrupt: " + err.Error())
	}
	b := &blocklist{all: string(raw)}
	for i := 0; i < len(raw); {
		b.starts = append(b.starts, int32(i))
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			break
		}
		i += j + 1
	}
	return b
})

func (b *blocklist) entry(i int) string {
	s := b.all[b.starts[i]:]
	if j := strings.IndexByte(s, '\n'); j >= 0 {
		s = s[:j]
	}
	return s
}

func (b *blocklist) Len() int { return len(b.starts) }

func (b *blocklist) contains(w string) bool {
	i := sort.Search(len(b.starts), func(i int) bool { return b.entry(i) >= w })
	return i < len(b.starts) && b.entry(i) == w
}

// NormalizePassword is what is hashed and checked: NFKC (so that the same
// password typed on two keyboards is the same password), nothing else.
func NormalizePassword(pw secrets.Text) secrets.Text {
	return secrets.Text(norm.NFKC.String(pw.Reveal()))
}

// PasswordContext is what a password must not be built on, and whether the
// account has a second factor (which lowers the minimum length).
type PasswordContext struct {
	Email      string
	TenantName string
	HasMFA     bool
}

// CheckPassword applies the policy for an account without a second factor.
func CheckPassword(pw secrets.Text, email string) error {
	return CheckPasswordPolicy(pw, PasswordContext{Email: email})
}

// CheckPasswordPolicy applies the password policy (NIST SP 800-63B rev. 4):
// at least 15 characters without a second factor, 8 with one; up to 128;
// any Unicode, NFKC-normalised; no composition rules; not on the blocklist;
// not built on the email, the tenant's name or the service's name.
func CheckPasswordPolicy(pw secrets.Text, pc PasswordContext) error {
	p := pw.Reveal()
	if !utf8.ValidString(p) {
		return api.Errorf(api.CodeInvalid, "password must be valid UTF-8")
	}
	if len(p) > maxPasswordBytes {
		return api.Errorf(api.CodeInvalid, "password is longer than %d bytes", maxPasswordBytes)
	}
	p = norm.NFKC.String(p)
	n := utf8.RuneCountInString(p)
	minRunes := minPasswordRunes
	if pc.HasMFA {
		minRunes = minPasswordRunesMFA
	}
	if n < minRunes {
		return api.Errorf(api.CodeInvalid, "password must be at least %d characters (it has %d); a passphrase of several words is easiest", minRunes, n)
	}
	if n > maxPasswordRunes {
		return api.Errorf(api.CodeInvalid, "password must be at most %d characters", maxPasswordRunes)
	}
	low := strings.ToLower(p)
	if loadBlocklist().contains(low) {
		return api.Errorf(api.CodeInvalid, "password is on the list of common, breached or dictionary passwords; choose another")
	}
	for _, w := range contextWords(pc.Email, pc.TenantName) {
		if low == w || (utf8.RuneCountInString(w) >= 4 && strings.Contains(low, w) &&
			utf8.RuneCountInString(strings.ReplaceAll(low, w, "")) < minOtherRunes) {
			return api.Errorf(api.CodeInvalid, "password is built on the email address, the tenant's name or the service name; choose one that is not about this account or this service")
		}
	}
	if strings.Count(low, string([]rune(low)[0])) == utf8.RuneCountInString(low) {
		return api.Errorf(api.CodeInvalid, "password repeats one character; choose another")
	}
	return nil
}

// contextWords are the words a password must not be built on.
func contextWords(email, tenant string) []string {
	words := []string{"rampart"}
	if email != "" {
		email = strings.ToLower(norm.NFKC.String(email))
		words = append(words, email, strings.SplitN(email, "@", 2)[0])
		if _, domain, ok := strings.Cut(email, "@"); ok {
			words = append(words, strings.SplitN(domain, ".", 2)[0])
		}
	}
	if t := strings.ToLower(norm.NFKC.String(strings.TrimSpace(tenant))); t != "" && t != "default" {
		words = append(words, t)
	}
	return words
}

// HashParams are argon2id parameters (RFC 9106).
type HashParams struct {
	Time    uint32
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultHashParams is RFC 9106's second recommendation: m=64 MiB, t=3, p=4.
var DefaultHashParams = HashParams{Time: 3, Memory: 64 * 1024, Threads: 4}

// Hasher hashes and verifies passwords with argon2id, at most `slots` at a
// time so that a login flood cannot exhaust memory.
type Hasher struct {
	p     HashParams
	slots chan struct{}
	dummy func() string // a hash of nothing, made on first use (not at start-up)
}

// NewHasher returns a hasher with at most runtime.NumCPU() hashes in flight.
func NewHasher(p HashParams) *Hasher {
	h := &Hasher{p: p, slots: make(chan struct{}, runtime.NumCPU())}
	h.dummy = sync.OnceValue(func() string {
		salt := make([]byte, 16)
		rand.Read(salt)
		return h.encode(salt, argon2.IDKey([]byte("rampart dummy password"), salt, p.Time, p.Memory, p.Threads, 32))
	})
	return h
}

func (h *Hasher) encode(salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.p.Memory, h.p.Time, h.p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// Params are the parameters new hashes use.
func (h *Hasher) Params() HashParams { return h.p }

// NeedsRehash reports whether phc was made with other parameters than the
// hasher's (the login that proves the password then rehashes it).
func (h *Hasher) NeedsRehash(phc string) bool {
	p, _, _, err := parsePHC(phc)
	return err != nil || p != h.p
}

func (h *Hasher) acquire(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, hashQueueWait)
	defer cancel()
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return api.Errorf(api.CodeRateLimited, "too many password checks in progress; try again shortly")
	}
}

func (h *Hasher) release() { <-h.slots }

// Hash returns a PHC string for pw.
func (h *Hasher) Hash(ctx context.Context, pw secrets.Text) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return h.encode(salt, argon2.IDKey([]byte(NormalizePassword(pw).Reveal()), salt, h.p.Time, h.p.Memory, h.p.Threads, 32)), nil
}

// Verify checks pw against a PHC string.
func (h *Hasher) Verify(ctx context.Context, phc string, pw secrets.Text) (bool, error) {
	p, salt, key, err := parsePHC(phc)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(NormalizePassword(pw).Reveal()), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// Burn spends the cost of one verification, for unknown users.
func (h *Hasher) Burn(ctx context.Context) {
	_, _ = h.Verify(ctx, h.dummy(), "")
}

func parsePHC(s string) (HashParams, []byte, []byte, error) {
	var p HashParams
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, nil, nil, errors.New("stored password hash is not argon2id PHC")
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &threads); err != nil || threads == 0 || threads > 255 {
		return p, nil, nil, errors.New("stored password hash has bad parameters")
	}
	p.Threads = uint8(threads)
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 {
		return p, nil, nil, errors.New("stored password hash is malformed")
	}
	return p, salt, key, nil
}
