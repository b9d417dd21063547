package app

import (
	"log/slog"
	"time"

	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/config"
	"github.com/rampart-iot/rampart/internal/httpapi"
	"github.com/rampart-iot/rampart/internal/journal"
)

// hashParamsFrom is the password hashing cost the configuration asks for.
func hashParamsFrom(cfg *config.Config) accounts.HashParams {
	return accounts.HashParams{
		Memory:  uint32(cfg.Passwords.Argon2MemoryKiB),
		Time:    uint32(cfg.Passwords.Argon2Time),
		Threads: uint8(cfg.Passwords.Argon2Threads),
	}
}

// accountOptions wires the accounts service: the SQLite store, the journal,
// the keyring (which seals TOTP secrets), the injected clock and
// randomness, and the configured lifetimes. Idle expiry never exceeds the
// absolute one.
func accountOptions(cfg *config.Config, d *data, j *journal.Journal, e env, so serveOptions, log *slog.Logger) accounts.Options {
	return accounts.Options{
		Store: d.db.Accounts(), Journal: j, Now: e.now, Rand: e.rand,
		Hasher:     accounts.NewHasher(so.hashParams),
		Sealer:     d.keyring,
		SetupTTL:   time.Duration(cfg.Setup.CodeTTL),
		SessionTTL: time.Duration(cfg.Sessions.TTL),
		IdleTTL:    min(time.Duration(cfg.Sessions.IdleTTL), time.Duration(cfg.Sessions.TTL)),
		InviteTTL:  time.Duration(cfg.Accounts.InviteTTL),
		ResetTTL:   time.Duration(cfg.Accounts.ResetTTL),
		OpenSignup: cfg.Accounts.OpenSignup,
		Logger:     log,
	}
}

// withHandler hands the API handler to f once it is built (tests walk its
// route table).
func withHandler(f func(*httpapi.Handler)) Option {
	return func(o *serveOptions) { o.onHandler = f }
}
