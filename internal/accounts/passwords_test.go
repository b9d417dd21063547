package accounts

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/secrets"
)

func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		name, pw, email string
		ok              bool
	}{
		{"ok/passphrase", "correct horse battery staple", "a@example.com", true},
		{"ok/exactly 15", "abcdefghijklmn1", "", true},
		{"ok/unicode counts characters not bytes", "ünïcödé pässwör", "", true},
		{"ok/128 characters", strings.Repeat("ab", 64), "", true},
		{"fail/14 characters", "abcdefghijklm1", "", false},
		{"fail/14 unicode characters in 28 bytes", "ünïcödé pässwö", "", false},
		{"fail/129 characters", strings.Repeat("ab", 64) + "c", "", false},
		{"fail/common password", "mailcreated5240", "", false},
		{"fail/common password any case", "MailCreated5240", "", false},
		{"fail/the email", "someone@example.com", "someone@example.com", false},
		{"fail/email local part plus little", "someone1234567!", "someone@example.com", false},
		{"fail/service name plus little", "rampart-2026-01", "", false},
		{"fail/one repeated character", strings.Repeat("z", 20), "", false},
		{"fail/invalid UTF-8", "abcdefghijklmnop\xff", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPassword(secrets.Text(tc.pw), tc.email)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok {
				if err == nil {
					t.Fatal("accepted")
				}
				if api.ErrorCode(err) != api.CodeInvalid {
					t.Fatalf("code %s, want invalid_request", api.ErrorCode(err))
				}
				if strings.Contains(err.Error(), tc.pw) && len(tc.pw) > 0 {
					t.Fatalf("error echoes the password: %v", err)
				}
			}
		})
	}
	if n := len(commonPasswords()); n != 10000 {
		t.Fatalf("common password list has %d entries, want 10000", n)
	}
}

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHasher(t *testing.T) {
	h := NewHasher(HashParams{Time: 1, Memory: 1024, Threads: 1})
	ctx := context.Background()
	phc, err := h.Hash(ctx, "a very good password")
	if err != nil {
		t.Fatal(err)
	}
	if !phcRE.MatchString(phc) {
		t.Fatalf("hash %q is not an argon2id PHC string", phc)
	}
	phc2, _ := h.Hash(ctx, "a very good password")
	if phc == phc2 {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"a very good password", true}, {"a very good passwore", false}, {"", false}} {
		ok, err := h.Verify(ctx, phc, secrets.Text(tc.pw))
		if err != nil || ok != tc.want {
			t.Errorf("Verify(%q) = %v, %v; want %v", tc.pw, ok, err, tc.want)
		}
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=1,t=1,p=0$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=1,t=1,p=1$!!$!!"} {
		if _, err := h.Verify(ctx, bad, "x"); err == nil {
			t.Errorf("Verify accepted malformed hash %q", bad)
		}
	}
}

func TestHasherCapsConcurrentHashes(t *testing.T) {
	h := NewHasher(HashParams{Time: 1, Memory: 1024, Threads: 1})
	for i := 0; i < cap(h.slots); i++ {
		h.slots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := h.Hash(ctx, "a very good password")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeRateLimited {
		t.Fatalf("hash with every slot busy: %v; want rate_limited after the deadline", err)
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g")
	f.Add("$argon2id$v=19$m=99999999999,t=1,p=1$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := parsePHC(s)
		if err == nil && (p.Threads == 0 || len(salt) < 8 || len(key) < 16) {
			t.Fatalf("accepted %q with unusable parameters", s)
		}
	})
}
