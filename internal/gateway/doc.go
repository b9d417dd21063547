// Package gateway is Rampart's edge gateway for legacy protocols (Modbus
// first). It runs beside PLCs on their isolated segment and moves their
// traffic onto the secure path; it is an ordinary program on the device
// SDK and talks to the hub only through sdk/ and api/.
//
//   - Southbound it polls each PLC (Modbus/TCP, or RTU over a serial line)
//     per a register map (unit ID, function, address, type, scale, unit),
//     with a timeout per request, retries, and exponential backoff while
//     the PLC is away.
//   - Each PLC is a device of its own on the hub: the gateway holds one
//     identity per PLC (and one for itself), each in its own keystore under
//     the gateway's key, and opens one MQTT/mTLS session per identity. A
//     PLC's readings arrive as devices/{plc}/telemetry/registers, commands
//     for it come on devices/{plc}/commands, signed for that identity.
//   - A command becomes a Modbus write only when its name is on the PLC's
//     write allow-list (a register with a write: block), the hub's signature
//     verifies with the pinned command key, and the value passes the PLC's
//     safety policy, evaluated again here by sdk/safety's Guard; the raw
//     value must then fit the register's type exactly (never clamped).
//     Without write: blocks a PLC is read-only.
//   - For SCADA/HMI clients it serves Modbus/TCP Security (TLS, client
//     certificate required, role from the certificate extension
//     1.3.6.1.4.1.50316.802.1) with per-role allow-lists of function codes
//     and register ranges, forwarding what is allowed to the PLC.
//   - Every write, refusal and southbound fault is published on
//     devices/{id}/events/gateway (api.GatewayEvent), which the hub
//     journals as gateway.{kind}; Guard refusals also go out on
//     devices/{id}/events/safety (journaled as safety.device_refused).
package gateway
