// Package sdk is Rampart's device SDK: from zero to an enrolled, connected,
// renewing device in a page of code, where the secure path is the only one.
//
// A device keeps its identity in an encrypted keystore (package
// sdk/keystore): the private key is made there and never leaves it as
// bytes. It enrolls once, authenticating the hub by the CA bundle or CA
// fingerprint given at provisioning (never the system roots; there is no
// option to skip verification):
//
//	ks, _ := keystore.Create("/data/device.keystore", &keystore.KeyFile{Path: "/secure/ks.key"})
//	dev, err := sdk.Enroll(ctx, ks, sdk.Enrollment{
//		Hub:   "https://hub.example:8443",
//		MQTT:  "hub.example:8883",
//		Trust: sdk.Trust{CABundle: caPEM},
//		Token: keystore.NewSecret(token), // or Claim + SerialNumber, or Factory (attestation)
//	})
//
// After a reboot, sdk.Load(ks) gives the device back. Connect opens MQTT
// over mutual TLS (client ID = device ID) and keeps it open:
//
//	c, err := sdk.Connect(ctx, dev, sdk.Options{Commands: sdk.Chain(handler, sdk.RejectExpired(nil))})
//	c.Telemetry("temperature", reading)         // devices/{id}/telemetry/temperature
//	sdk.TelemetryStream[Reading](c, "t").Send(r) // typed
//
// What Connect does by itself:
//   - reconnects after any loss with exponential backoff and full jitter
//     (uniform in [0, min(60 s, 0.5 s * 2^attempt))), and never sends more
//     than 8 CONNECTs in 30 s, below the hub's flapping ban;
//   - renews the certificate at 2/3 of its lifetime (POST /api/v1/renew
//     over mutual TLS, a new key each time), committing the new key and
//     certificate to the keystore atomically; the MQTT session stays up;
//   - queues telemetry, events and command acknowledgements in a bounded
//     queue that drops the oldest when full (Stats.Dropped counts them);
//     messages leave it only when the hub acknowledges them (QoS 1), so
//     nothing is lost across an outage, and a message may arrive twice
//     only when the outage swallowed its PUBACK. Telemetry and Event never
//     block: the device's local work goes on while the hub is away;
//   - for a device with a per-device secret instead of a certificate
//     (ProvisionSecret) that the hub marks must_rotate, replaces the secret
//     with 256 random bits before anything else, committing it to the
//     keystore first so a crash mid-rotation cannot lock the device out.
//
// Commands arrive on devices/{id}/commands as JSON (see Command) and go to
// a Handler; its outcome is acknowledged on devices/{id}/acks/{command id}.
// Verification (signatures, issuers) and local safety limits are
// Middleware, so adding them later changes no handler:
//
//	h := sdk.Chain(valve, sdk.Verify(signatureVerifier), limits, sdk.RejectExpired(nil))
package sdk
