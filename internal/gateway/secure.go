package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/rampart-iot/rampart/api"
)

// RoleOID is the Modbus/TCP Security role extension (MBAPS R-21).
var RoleOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 50316, 802, 1}

// Role refusal codes.
var (
	errNoRole    = errors.New("client certificate carries no role extension")
	errManyRoles = errors.New("client certificate carries more than one role extension")
	errBadRole   = errors.New("client certificate's role extension is not a UTF8String")
)

// RoleOf returns the role in a client certificate: exactly one extension
// with the role OID, a non-empty DER UTF8String (MBAPS ); anything
// else is an error, and the client gets nothing.
func RoleOf(c *x509.Certificate) (string, error) {
	role, found := "", false
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(RoleOID) {
			continue
		}
		if found {
			return "", errManyRoles
		}
		found = true
		var raw asn1.RawValue
		rest, err := asn1.Unmarshal(ext.Value, &raw)
		if err != nil || len(rest) != 0 || raw.Class != asn1.ClassUniversal || raw.Tag != asn1.TagUTF8String || len(raw.Bytes) == 0 || len(raw.Bytes) > 128 {
			return "", errBadRole
		}
		role = string(raw.Bytes)
	}
	if !found {
		return "", errNoRole
	}
	return role, nil
}

// secureServer is the Modbus/TCP Security listener.
type secureServer struct {
	cfg   *Secure
	ln    net.Listener
	tcfg  *tls.Config
	units map[uint8]*plcRunner
	// events reports refusals that concern no PLC (handshakes, roles).
	events func(api.GatewayEvent)
	log    *slog.Logger
	slots  chan struct{}

	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (s *secureServer) serve(ctx context.Context) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			c.Close() // over max_clients
			continue
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			s.handle(ctx, c)
		}()
	}
}

func (s *secureServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *secureServer) refuse(ev api.GatewayEvent) {
	ev.Kind, ev.Source = api.GatewayRefused, "scada"
	if s.events != nil {
		s.events(ev)
	}
}

// handle runs one client: TLS with a verified client certificate, its
// role, then request by request.
func (s *secureServer) handle(ctx context.Context, raw net.Conn) {
	addr := raw.RemoteAddr().String()
	tc := tls.Server(raw, s.tcfg)
	_ = raw.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		s.log.Info("SCADA client refused at TLS", "client", addr, "err", err)
		s.refuse(api.GatewayEvent{Client: addr, Code: "tls", Message: truncate(err.Error(), 200)})
		return
	}
	st := tc.ConnectionState()
	if len(st.PeerCertificates) == 0 { // RequireAndVerifyClientCert makes this unreachable; deny anyway
		s.refuse(api.GatewayEvent{Client: addr, Code: "no_certificate"})
		return
	}
	role, err := RoleOf(st.PeerCertificates[0])
	if err == nil && s.cfg.Roles[role] == nil {
		err = fmt.Errorf("role %q has no rights on this gateway", role)
	}
	if err != nil {
		s.log.Info("SCADA client refused", "client", addr, "err", err)
		s.refuse(api.GatewayEvent{Client: addr, Role: role, Code: "no_role", Message: err.Error()})
		return
	}
	var buf [mbapHeaderLen + maxPDU]byte
	out := make([]byte, 0, mbapHeaderLen+maxPDU)
	for {
		_ = raw.SetDeadline(time.Now().Add(idleTimeout))
		h, pdu, err := readFrame(tc, &buf)
		if err != nil {
			return // EOF, timeout, or a stream that is not Modbus/TCP
		}
		resp := s.answer(ctx, role, addr, h, pdu)
		if _, err := tc.Write(appendFrame(out[:0], h, resp)); err != nil {
			return
		}
	}
}

// answer authorizes and forwards one request; it returns the response PDU.
func (s *secureServer) answer(ctx context.Context, role, addr string, h mbap, pdu []byte) []byte {
	fc := byte(0)
	if len(pdu) > 0 {
		fc = pdu[0]
	}
	q, ex := parseRequest(pdu)
	p := s.units[h.Unit]
	ev := api.GatewayEvent{Role: role, Client: addr, Function: int(fc), Address: int(q.Addr), Count: int(q.Qty)}
	if p == nil {
		s.refuse(withCode(ev, "unknown_unit", fmt.Sprintf("unit %d is not a PLC of this gateway", h.Unit)))
		return exception(fc, exGatewayPath)
	}
	if ex != 0 {
		p.scadaRefused(withCode(ev, "malformed", "request does not parse"))
		return exception(fc, ex)
	}
	if ex := authorize(s.cfg.Roles[role], p.cfg.Name, q); ex != 0 {
		p.scadaRefused(withCode(ev, "not_allowed", fmt.Sprintf("role %q may not use function %d on %s %d-%d of %s",
			role, fc, tableOf(fc), q.Addr, int(q.Addr)+int(q.Qty)-1, p.cfg.Name)))
		return exception(fc, ex)
	}
	if ex, why := p.scadaBounds(q); ex != 0 {
		p.scadaRefused(withCode(ev, "out_of_bounds", why))
		return exception(fc, ex)
	}
	regs, bits, err := p.forward(ctx, q)
	if err != nil {
		code := exceptionFor(err)
		if isWrite(fc) {
			p.event(api.GatewayEvent{Kind: api.GatewayFault, Source: "scada", Role: role, Client: addr, Function: int(fc),
				Address: int(q.Addr), Count: int(q.Qty), Code: faultCode(err), Message: err.Error()})
		}
		return exception(fc, code)
	}
	if isWrite(fc) {
		p.event(api.GatewayEvent{Kind: api.GatewayWrite, Source: "scada", Role: role, Client: addr, Function: int(fc),
			Address: int(q.Addr), Count: int(q.Qty)})
		return writeResponse(q, pdu)
	}
	return readResponse(fc, regs, bits)
}

func withCode(ev api.GatewayEvent, code, msg string) api.GatewayEvent {
	ev.Code, ev.Message = code, msg
	return ev
}

// authorize is deny-by-default: some rule of the role must name this PLC,
// this function code, and a range holding every address the request
// covers. It returns a Modbus exception code, or 0.
func authorize(rules []Rule, plc string, q request) byte {
	fnOK := false
	for _, r := range rules {
		if r.PLC != plc {
			continue
		}
		for _, f := range r.Functions {
			if f != int(q.Function) {
				continue
			}
			fnOK = true
			lo, hi := int(q.Addr), int(q.Addr)+int(q.Qty)-1
			for _, rg := range r.ranges {
				if lo >= rg[0] && hi <= rg[1] {
					return 0
				}
			}
		}
	}
	if !fnOK {
		return exIllegalFunction
	}
	return exIllegalAddress
}

func (p *plcRunner) scadaRefused(ev api.GatewayEvent) {
	ev.Kind, ev.Source = api.GatewayRefused, "scada"
	p.event(ev)
}

// forward runs an authorized request on the PLC.
func (p *plcRunner) forward(ctx context.Context, q request) (regs []uint16, bits []bool, err error) {
	err = p.do(ctx, func(mc *modbus.ModbusClient) error {
		var e error
		switch q.Function {
		case fcReadCoils:
			bits, e = mc.ReadCoils(q.Addr, q.Qty)
		case fcReadDiscrete:
			bits, e = mc.ReadDiscreteInputs(q.Addr, q.Qty)
		case fcReadHolding:
			regs, e = mc.ReadRegisters(q.Addr, q.Qty, modbus.HOLDING_REGISTER)
		case fcReadInput:
			regs, e = mc.ReadRegisters(q.Addr, q.Qty, modbus.INPUT_REGISTER)
		case fcWriteCoil:
			e = mc.WriteCoil(q.Addr, q.Bits[0])
		case fcWriteRegister:
			e = mc.WriteRegister(q.Addr, q.Regs[0])
		case fcWriteMultipleCoils:
			e = mc.WriteCoils(q.Addr, q.Bits)
		case fcWriteMultipleRegs:
			e = mc.WriteRegisters(q.Addr, q.Regs)
		default:
			e = modbus.ErrIllegalFunction
		}
		return e
	})
	return regs, bits, err
}

// exceptionFor maps a southbound error to the exception the SCADA client sees.
func exceptionFor(err error) byte {
	for e, code := range map[error]byte{modbus.ErrIllegalFunction: exIllegalFunction, modbus.ErrIllegalDataAddress: exIllegalAddress,
		modbus.ErrIllegalDataValue: exIllegalValue, modbus.ErrServerDeviceFailure: exDeviceFailure, modbus.ErrServerDeviceBusy: 0x06} {
		if errors.Is(err, e) {
			return code
		}
	}
	return exGatewayNoResponse
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
