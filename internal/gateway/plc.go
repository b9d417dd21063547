package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/sdk"
	"github.com/rampart-iot/rampart/sdk/safety"
)

// Uplink is what a PLC needs of its hub session (an *sdk.Client).
type Uplink interface {
	Telemetry(name string, v any) error
	Event(name string, v any) error
}

// plcRunner polls one PLC, publishes its readings, runs its commands and
// forwards the secure server's requests to it.
type plcRunner struct {
	cfg      *PLC
	deviceID string
	up       Uplink
	now      func() time.Time
	log      *slog.Logger
	lowFirst bool
	writes   map[string][]*Register // command name -> registers it writes
	guard    *safety.Guard          // nil for a read-only PLC

	mu      sync.Mutex // serialises the southbound link (one request at a time, as Modbus wants)
	mc      *modbus.ModbusClient
	faulted bool

	reads, pollsOK, pollsFailed atomic.Uint64
}

func newPLCRunner(p *PLC, deviceID string, up Uplink, hubKey []byte, now func() time.Time, lg *slog.Logger) (*plcRunner, error) {
	r := &plcRunner{cfg: p, deviceID: deviceID, up: up, now: now, log: lg.With("plc", p.Name), lowFirst: p.WordOrder == "low_first",
		writes: map[string][]*Register{}}
	for i := range p.Registers {
		reg := &p.Registers[i]
		if reg.Write != nil {
			r.writes[reg.Write.Command] = append(r.writes[reg.Write.Command], reg)
		}
	}
	if p.model != nil {
		g, err := safety.NewGuard(safety.GuardOptions{DeviceID: deviceID, HubKey: hubKey, Model: *p.model, Now: now,
			SafeState: r.safeState,
			Report: func(ev safety.Event) {
				_ = up.Event("safety", ev.Wire()) // journaled by the hub as safety.device_{kind}
			}})
		if err != nil {
			return nil, fmt.Errorf("PLC %s: %w", p.Name, err)
		}
		r.guard = g
	}
	return r, nil
}

func (r *plcRunner) event(ev api.GatewayEvent) {
	ev.PLC = r.cfg.Name
	ev.At = r.now().UTC().Format(time.RFC3339Nano)
	if err := r.up.Event("gateway", ev); err != nil {
		r.log.Warn("gateway event not queued", "kind", ev.Kind, "err", err)
	}
}

var discardLog = log.New(io.Discard, "", 0)

// open dials the PLC (mu held).
func (r *plcRunner) open() error {
	c := &modbus.ClientConfiguration{Timeout: time.Duration(r.cfg.Timeout), Logger: discardLog}
	if r.cfg.RTU != nil {
		c.URL = "rtu://" + r.cfg.RTU.Device
		c.Speed, c.DataBits, c.StopBits = r.cfg.RTU.Baud, r.cfg.RTU.DataBits, r.cfg.RTU.StopBits
		c.Parity = map[string]uint{"": modbus.PARITY_NONE, "none": modbus.PARITY_NONE, "even": modbus.PARITY_EVEN, "odd": modbus.PARITY_ODD}[r.cfg.RTU.Parity]
	} else {
		c.URL = "tcp://" + r.cfg.Address
	}
	mc, err := modbus.NewClient(c)
	if err != nil {
		return err
	}
	if err := mc.Open(); err != nil {
		return err
	}
	if r.cfg.UnitID != 0 {
		_ = mc.SetUnitId(r.cfg.UnitID)
	}
	r.mc = mc
	return nil
}

// isException: the PLC answered with a Modbus exception (the link works;
// retrying will not help).
func isException(err error) bool {
	for _, e := range []error{modbus.ErrIllegalFunction, modbus.ErrIllegalDataAddress, modbus.ErrIllegalDataValue,
		modbus.ErrServerDeviceFailure, modbus.ErrAcknowledge, modbus.ErrServerDeviceBusy, modbus.ErrMemoryParityError,
		modbus.ErrGWPathUnavailable, modbus.ErrGWTargetFailedToRespond} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// do runs fn on the link with the configured retries (backoff doubling
// from a tenth of the timeout); a link error closes the connection so the
// next try dials afresh.
func (r *plcRunner) do(ctx context.Context, fn func(*modbus.ModbusClient) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	wait := time.Duration(r.cfg.Timeout) / 10
	for try := 0; try <= *r.cfg.Retries; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
		}
		if r.mc == nil {
			if err = r.open(); err != nil {
				continue
			}
		}
		if err = fn(r.mc); err == nil || isException(err) {
			return err
		}
		r.mc.Close()
		r.mc = nil
	}
	return err
}

func (r *plcRunner) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mc != nil {
		r.mc.Close()
		r.mc = nil
	}
}

// read reads one register's engineering value (float64 or bool).
func (r *plcRunner) read(mc *modbus.ModbusClient, reg *Register) (any, error) {
	r.reads.Add(1)
	switch reg.Function {
	case "coil":
		return mc.ReadCoil(reg.Address)
	case "discrete":
		return mc.ReadDiscreteInput(reg.Address)
	}
	t := modbus.HOLDING_REGISTER
	if reg.Function == "input" {
		t = modbus.INPUT_REGISTER
	}
	raw, err := mc.ReadRegisters(reg.Address, reg.width(), t)
	if err != nil {
		return nil, err
	}
	return reg.decode(raw, r.lowFirst)
}

// poll reads the whole register map once.
func (r *plcRunner) poll(ctx context.Context) (map[string]any, error) {
	vals := make(map[string]any, len(r.cfg.Registers))
	for i := range r.cfg.Registers {
		reg := &r.cfg.Registers[i]
		err := r.do(ctx, func(mc *modbus.ModbusClient) error {
			v, err := r.read(mc, reg)
			vals[reg.Name] = v
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("reading %s (%s %d): %w", reg.Name, reg.Function, reg.Address, err)
		}
	}
	return vals, nil
}

// run polls until ctx ends: readings go to devices/{plc}/telemetry/registers;
// a failed poll is a fault (reported once, then the interval backs off,
// doubling up to backoff_max); the first good poll after is a recovery.
func (r *plcRunner) run(ctx context.Context, heard func()) {
	interval, failures := time.Duration(r.cfg.PollInterval), 0
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		vals, err := r.poll(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := interval
		if err != nil {
			r.pollsFailed.Add(1)
			failures++
			wait = min(time.Duration(r.cfg.BackoffMax), interval<<min(failures, 20))
			if !r.faulted {
				r.faulted = true
				r.log.Warn("PLC not answering", "err", err)
				r.event(api.GatewayEvent{Kind: api.GatewayFault, Source: "poll", Code: faultCode(err), Message: err.Error()})
			}
		} else {
			r.pollsOK.Add(1)
			if r.faulted {
				r.faulted = false
				r.log.Info("PLC answering again", "after_failed_polls", failures)
				r.event(api.GatewayEvent{Kind: api.GatewayRecovered, Source: "poll", Message: fmt.Sprintf("answering again after %d failed polls", failures)})
			}
			failures = 0
			if err := r.up.Telemetry("registers", vals); err != nil {
				r.log.Warn("telemetry not queued", "err", err)
			}
		}
		if heard != nil {
			heard()
		}
		t.Reset(wait)
	}
}

func faultCode(err error) string {
	switch {
	case errors.Is(err, modbus.ErrRequestTimedOut):
		return "timeout"
	case isException(err):
		return "exception"
	}
	return "unreachable"
}

// HandleCommand is the PLC's sdk.Handler: allow-list, then the Guard
// (signature, freshness, sequence, the gateway's copy of the policy), then
// every value must fit its register; only then are the registers written.
func (r *plcRunner) HandleCommand(ctx context.Context, cmd *sdk.Command) (any, error) {
	refuse := func(code, format string, args ...any) error {
		msg := fmt.Sprintf(format, args...)
		r.event(api.GatewayEvent{Kind: api.GatewayRefused, Source: "command", CommandID: cmd.ID, Code: code, Message: msg})
		return sdk.Reject(code, "%s", msg)
	}
	regs := r.writes[cmd.Name]
	if len(regs) == 0 || r.guard == nil {
		return nil, refuse("not_allowed", "command %q writes no register on this PLC's write allow-list", cmd.Name)
	}
	adm, err := r.guard.Admit(cmd.Raw) // reports its own refusals on events/safety
	if err != nil {
		var rej *safety.Rejection
		if errors.As(err, &rej) {
			return nil, sdk.Reject(rej.Code, "%s", rej.Message)
		}
		return nil, err
	}
	type write struct {
		reg  *Register
		regs []uint16
		bit  bool
		val  any
	}
	var plan []write
	for _, reg := range regs {
		v, ok := adm.Decision.Values[reg.Write.Param]
		if !ok {
			continue
		}
		w := write{reg: reg, val: v}
		switch x := v.(type) {
		case bool:
			if reg.Function != "coil" {
				return nil, refuse("out_of_range", "%s is a boolean; register %s is a number", reg.Write.Param, reg.Name)
			}
			w.bit = x
		case float64:
			if reg.Function == "coil" {
				return nil, refuse("out_of_range", "%s is a number; register %s is a coil", reg.Write.Param, reg.Name)
			}
			if w.regs, err = reg.encode(x, r.lowFirst); err != nil {
				return nil, refuse("out_of_range", "register %s: %v", reg.Name, err)
			}
		default:
			return nil, refuse("out_of_range", "%s has an unsupported type", reg.Write.Param)
		}
		plan = append(plan, w)
	}
	written := map[string]any{}
	for _, w := range plan {
		if err := r.write(ctx, w.reg, w.regs, w.bit); err != nil {
			r.event(api.GatewayEvent{Kind: api.GatewayFault, Source: "command", CommandID: cmd.ID, Address: int(w.reg.Address),
				Code: faultCode(err), Message: fmt.Sprintf("writing %s: %v", w.reg.Name, err)})
			return nil, fmt.Errorf("writing %s: %w", w.reg.Name, err)
		}
		fc := fcWriteRegister
		if w.reg.Function == "coil" {
			fc = fcWriteCoil
		} else if len(w.regs) > 1 {
			fc = fcWriteMultipleRegs
		}
		r.event(api.GatewayEvent{Kind: api.GatewayWrite, Source: "command", CommandID: cmd.ID, Function: fc, Address: int(w.reg.Address),
			Count: max(1, len(w.regs)), Message: fmt.Sprintf("%s = %v", w.reg.Name, w.val)})
		written[w.reg.Name] = w.val
	}
	return map[string]any{"written": written}, nil
}

func (r *plcRunner) write(ctx context.Context, reg *Register, regs []uint16, bit bool) error {
	return r.do(ctx, func(mc *modbus.ModbusClient) error {
		switch {
		case reg.Function == "coil":
			return mc.WriteCoil(reg.Address, bit)
		case len(regs) == 1:
			return mc.WriteRegister(reg.Address, regs[0])
		default:
			return mc.WriteRegisters(reg.Address, regs)
		}
	})
}

// safeState drives every writable register whose parameter names a safe
// state output to that value (emergency stop, failsafe).
func (r *plcRunner) safeState(reason string) {
	if r.cfg.model == nil || r.cfg.model.SafeState == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Duration(r.cfg.Timeout))
	defer cancel()
	for i := range r.cfg.Registers {
		reg := &r.cfg.Registers[i]
		v, ok := r.cfg.model.SafeState.Outputs[reg.Write.paramOrEmpty()]
		if reg.Write == nil || !ok {
			continue
		}
		var err error
		if reg.Function == "coil" {
			err = r.write(ctx, reg, nil, v != 0)
		} else {
			var raw []uint16
			if raw, err = reg.encode(v, r.lowFirst); err == nil {
				err = r.write(ctx, reg, raw, false)
			}
		}
		if err != nil {
			r.event(api.GatewayEvent{Kind: api.GatewayFault, Source: "command", Address: int(reg.Address), Code: reason,
				Message: fmt.Sprintf("safe state: writing %s = %v: %v", reg.Name, v, err)})
			continue
		}
		r.event(api.GatewayEvent{Kind: api.GatewayWrite, Source: "command", Address: int(reg.Address), Code: reason,
			Message: "safe state: " + reg.Name + " = " + strconv.FormatFloat(v, 'g', -1, 64)})
	}
}

func (w *WriteSpec) paramOrEmpty() string {
	if w == nil {
		return ""
	}
	return w.Param
}
