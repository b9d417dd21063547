// Package plcsim is a simulated PLC: a Modbus/TCP server (from
// github.com/simonvetter/modbus) over an in-memory register bank, for the
// gateway's tests, benchmarks and demos. It listens on loopback only.
package plcsim

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"

	"github.com/simonvetter/modbus"
)

// PLC is a register bank behind a Modbus/TCP server.
type PLC struct {
	mu       sync.Mutex
	holding  [65536]uint16
	input    [65536]uint16
	coils    [65536]bool
	discrete [65536]bool
	writes   int
	unit     uint8

	addr string
	srv  *modbus.ModbusServer
}

// Start serves on addr ("127.0.0.1:0" picks a free port). unit is the
// unit ID it answers (0: any).
func Start(addr string, unit uint8) (*PLC, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, errors.New("plcsim listens on loopback only")
	}
	if _, port, _ := net.SplitHostPort(addr); port == "0" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		addr = l.Addr().String()
		l.Close()
	}
	p := &PLC{addr: addr, unit: unit}
	return p, p.Restart()
}

// Addr is HOST:PORT.
func (p *PLC) Addr() string { return p.addr }

// Stop closes the server and every connection (the PLC "goes away").
func (p *PLC) Stop() {
	p.mu.Lock()
	srv := p.srv
	p.srv = nil
	p.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// Restart serves again on the same address, registers intact.
func (p *PLC) Restart() error {
	srv, err := modbus.NewServer(&modbus.ServerConfiguration{URL: "tcp://" + p.addr, MaxClients: 16,
		Logger: log.New(io.Discard, "", 0)}, (*handler)(p))
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("plcsim on %s: %w", p.addr, err)
	}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
	return nil
}

// Holding returns a holding register.
func (p *PLC) Holding(a uint16) uint16 { p.mu.Lock(); defer p.mu.Unlock(); return p.holding[a] }

// SetHolding sets a holding register.
func (p *PLC) SetHolding(a, v uint16) { p.mu.Lock(); p.holding[a] = v; p.mu.Unlock() }

// SetInput sets an input register.
func (p *PLC) SetInput(a, v uint16) { p.mu.Lock(); p.input[a] = v; p.mu.Unlock() }

// Coil returns a coil.
func (p *PLC) Coil(a uint16) bool { p.mu.Lock(); defer p.mu.Unlock(); return p.coils[a] }

// SetCoil sets a coil.
func (p *PLC) SetCoil(a uint16, v bool) { p.mu.Lock(); p.coils[a] = v; p.mu.Unlock() }

// Writes counts the write requests the PLC served.
func (p *PLC) Writes() int { p.mu.Lock(); defer p.mu.Unlock(); return p.writes }

type handler PLC

func (h *handler) unitOK(u uint8) error {
	if h.unit != 0 && u != h.unit {
		return modbus.ErrGWTargetFailedToRespond
	}
	return nil
}

func (h *handler) HandleCoils(req *modbus.CoilsRequest) ([]bool, error) {
	if err := h.unitOK(req.UnitId); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.IsWrite {
		h.writes++
		copy(h.coils[req.Addr:], req.Args)
		return nil, nil
	}
	return append([]bool(nil), h.coils[req.Addr:int(req.Addr)+int(req.Quantity)]...), nil
}

func (h *handler) HandleDiscreteInputs(req *modbus.DiscreteInputsRequest) ([]bool, error) {
	if err := h.unitOK(req.UnitId); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bool(nil), h.discrete[req.Addr:int(req.Addr)+int(req.Quantity)]...), nil
}

func (h *handler) HandleHoldingRegisters(req *modbus.HoldingRegistersRequest) ([]uint16, error) {
	if err := h.unitOK(req.UnitId); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.IsWrite {
		h.writes++
		copy(h.holding[req.Addr:], req.Args)
		return nil, nil
	}
	return append([]uint16(nil), h.holding[req.Addr:int(req.Addr)+int(req.Quantity)]...), nil
}

func (h *handler) HandleInputRegisters(req *modbus.InputRegistersRequest) ([]uint16, error) {
	if err := h.unitOK(req.UnitId); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]uint16(nil), h.input[req.Addr:int(req.Addr)+int(req.Quantity)]...), nil
}
