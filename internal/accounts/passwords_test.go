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
		{"fail/breached password of 15+", "1234567887654321", "", false},
		{"fail/blocklisted after NFKC (fullwidth)", "ｍａｉｌｃｒｅａｔｅｄ５２４０", "", false},
		{"fail/email domain plus little", "examplecorp-2026", "ops@examplecorp.com", false},
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
	if n := loadBlocklist().Len(); n < 100_000 {
		t.Fatalf("blocklist has %d entries, want at least 100,000", n)
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

func TestCheckPasswordPolicyWithMFA(t *testing.T) {
	for _, tc := range []struct {
		name, pw string
		mfa, ok  bool
	}{
		{"ok/8 characters with MFA", "qz7!vk2#", true, true},
		{"fail/8 characters without MFA", "qz7!vk2#", false, false},
		{"fail/7 characters with MFA", "qz7!vk2", true, false},
		{"fail/blocklisted 8 characters with MFA", "password", true, false},
		{"fail/tenant name", "acme-widgets-2026", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPasswordPolicy(secrets.Text(tc.pw), PasswordContext{Email: "a@example.com", TenantName: "Acme-Widgets", HasMFA: tc.mfa})
			if (err == nil) != tc.ok {
				t.Fatalf("got %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestTOTPMatchesRFC6238Vectors(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, tc := range []struct {
		unix int64
		want string
	}{{59, "287082"}, {1111111109, "081804"}, {1234567890, "005924"}, {2000000000, "279037"}} {
		if got := TOTPCode(secret, time.Unix(tc.unix, 0)); got != tc.want {
			t.Errorf("T=%d: %s, want %s", tc.unix, got, tc.want)
		}
	}
	now := time.Unix(1234567890, 0)
	for d, ok := range map[time.Duration]bool{-30 * time.Second: true, 0: true, 30 * time.Second: true, 90 * time.Second: false, -90 * time.Second: false} {
		if _, got := matchTOTP(secret, TOTPCode(secret, now.Add(d)), now); got != ok {
			t.Errorf("code from %v away: accepted=%v, want %v", d, got, ok)
		}
	}
}

func TestThrottleDoublesAndForgets(t *testing.T) {
	now := time.Unix(0, 0)
	th := newThrottle(func() time.Time { return now })
	for i := 0; i < 5; i++ {
		if d := th.fail("k", 5); d != 0 {
			t.Fatalf("failure %d locked for %v; the first 5 are free", i+1, d)
		}
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	for _, w := range want {
		if d := th.fail("k", 5); d != w {
			t.Fatalf("lock %v, want %v", d, w)
		}
	}
	if th.wait("k") != 4*time.Second || th.wait("other") != 0 {
		t.Fatal("wait does not report the lock of the right key")
	}
	for i := 0; i < 40; i++ {
		th.fail("k", 5)
	}
	if d := th.wait("k"); d != throttleMaxDelay {
		t.Fatalf("lock grew to %v, want the cap %v", d, throttleMaxDelay)
	}
	now = now.Add(throttleMaxDelay + throttleWindow + time.Second)
	if th.wait("k") != 0 || th.fail("k", 5) != 0 {
		t.Fatal("throttle did not forget a quiet key")
	}
}
