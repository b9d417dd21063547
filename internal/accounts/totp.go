package accounts

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// totpCode is RFC 6238 / RFC 4226: HMAC-SHA1, dynamic truncation, 6 digits.
func totpCode(secret []byte, step int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	m := hmac.New(sha1.New, secret)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range totpDigits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", totpDigits, v%mod)
}

// TOTPCode returns the code for secret at t (for clients and tests).
func TOTPCode(secret []byte, t time.Time) string {
	return totpCode(secret, t.Unix()/totpStep)
}

// matchTOTP returns the step (within ±totpSkew of now) whose code is code.
func matchTOTP(secret []byte, code string, now time.Time) (int64, bool) {
	code = strings.TrimSpace(code)
	if len(code) != totpDigits {
		return 0, false
	}
	cur := now.Unix() / totpStep
	found, step := 0, int64(0)
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		if subtle.ConstantTimeCompare([]byte(totpCode(secret, cur+d)), []byte(code)) == 1 && found == 0 {
			found, step = 1, cur+d
		}
	}
	return step, found == 1
}

// totpURI is the otpauth:// URI authenticator apps read (as a QR code).
func totpURI(secret []byte, email string) string {
	v := url.Values{}
	v.Set("secret", codeEncoding.EncodeToString(secret))
	v.Set("issuer", "Rampart")
	v.Set("algorithm", "SHA1")
	v.Set("digits", fmt.Sprint(totpDigits))
	v.Set("period", fmt.Sprint(totpStep))
	return "otpauth://totp/" + url.PathEscape("Rampart:"+email) + "?" + v.Encode()
}
