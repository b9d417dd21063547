package api

// GatewayEvent is what an edge gateway publishes on
// devices/{id}/events/gateway (id: the PLC's identity, or the gateway's
// own for events about no PLC in particular): a Modbus write it made, a
// request or command it refused, a southbound fault and its recovery. The
// hub journals it as gateway.{kind}.
type GatewayEvent struct {
	Kind      string `json:"kind"`               // write, refused, fault, recovered
	Source    string `json:"source"`             // command, scada, poll
	PLC       string `json:"plc,omitempty"`      // the PLC's name in gw.yaml
	Function  int    `json:"function,omitempty"` // Modbus function code
	Address   int    `json:"address,omitempty"`
	Count     int    `json:"count,omitempty"`
	Role      string `json:"role,omitempty"`   // SCADA client's role (certificate extension)
	Client    string `json:"client,omitempty"` // SCADA client's address
	CommandID string `json:"command_id,omitempty"`
	Code      string `json:"code,omitempty"` // why: not_allowed, out_of_range, no_role, tls, timeout, ...
	Message   string `json:"message,omitempty"`
	At        string `json:"at,omitempty"` // RFC 3339, the gateway's clock
}

// Gateway event kinds.
const (
	GatewayWrite     = "write"
	GatewayRefused   = "refused"
	GatewayFault     = "fault"
	GatewayRecovered = "recovered"
)
