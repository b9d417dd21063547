package accounts

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// commonPasswords is the 10,000 most common passwords, ranked (from the
// MIT-licensed zxcvbn-ts "language-common" list; see
// common-passwords.LICENSE.txt). Issue #3 replaces it with a larger
// breached-password filter.
//
//go:embed common-passwords.txt
var commonPasswordsTxt []byte

var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 10000)
	sc := bufio.NewScanner(bytes.NewReader(commonPasswordsTxt))
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" {
			m[strings.ToLower(w)] = struct{}{}
		}
	}
	return m
})

// CheckPassword applies the password policy: 15 to 128 characters, any
// Unicode, no composition rules, not a common password, not the email.
func CheckPassword(pw secrets.Text, email string) error {
	p := pw.Reveal()
	if !utf8.ValidString(p) {
		return api.Errorf(api.CodeInvalid, "password must be valid UTF-8")
	}
	if len(p) > maxPasswordBytes {
		return api.Errorf(api.CodeInvalid, "password is longer than %d bytes", maxPasswordBytes)
	}
	n := utf8.RuneCountInString(p)
	if n < minPasswordRunes {
		return api.Errorf(api.CodeInvalid, "password must be at least %d characters (it has %d); a passphrase of several words is easiest", minPasswordRunes, n)
	}
	if n > maxPasswordRunes {
		return api.Errorf(api.CodeInvalid, "password must be at most %d characters", maxPasswordRunes)
	}
	low := strings.ToLower(p)
	if _, bad := commonPasswords()[low]; bad {
		return api.Errorf(api.CodeInvalid, "password is on the list of the most common passwords; choose another")
	}
	for _, w := range contextWords(email) {
		if low == w || (utf8.RuneCountInString(w) >= 4 && strings.Contains(low, w) &&
			utf8.RuneCountInString(strings.ReplaceAll(low, w, "")) < minOtherRunes) {
			return api.Errorf(api.CodeInvalid, "password is built on the email address or the service name; choose one that is not about this account or this service")
		}
	}
	if strings.Count(low, string([]rune(low)[0])) == len(low) {
		return api.Errorf(api.CodeInvalid, "password repeats one character; choose another")
	}
	return nil
}

// contextWords are the words a password must not be built on.
func contextWords(email string) []string {
	words := []string{"rampart"}
	if email != "" {
		email = strings.ToLower(email)
		words = append(words, email, strings.SplitN(email, "@", 2)[0])
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

func (h *Hasher) acquire(ctx context.Context) error {
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
	return h.encode(salt, argon2.IDKey([]byte(pw.Reveal()), salt, h.p.Time, h.p.Memory, h.p.Threads, 32)), nil
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
	got := argon2.IDKey([]byte(pw.Reveal()), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
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
