package gateway

import "fmt"

// scadaBounds applies the PLC model's parameter bounds to a SCADA write: a
// holding register that a command writes (Register.Write) may only be set,
// by anyone, to a value the command's parameter allows. Writes that cover
// part of a multi-word register are refused (they could assemble any
// value). Registers no command writes are governed by the role allow-lists
// alone. It returns a Modbus exception code and the reason, or 0.
func (p *plcRunner) scadaBounds(q request) (byte, string) {
	if q.Function != fcWriteRegister && q.Function != fcWriteMultipleRegs {
		return 0, ""
	}
	lo, hi := int(q.Addr), int(q.Addr)+len(q.Regs) // [lo, hi)
	for i := range p.cfg.Registers {
		r := &p.cfg.Registers[i]
		if r.Write == nil || r.Function != "holding" {
			continue
		}
		rlo, rhi := int(r.Address), int(r.Address)+int(r.width())
		if rhi <= lo || rlo >= hi {
			continue // untouched
		}
		if rlo < lo || rhi > hi {
			return exIllegalValue, fmt.Sprintf("write covers only part of %s", r.Name)
		}
		v, err := r.decode(q.Regs[rlo-lo:rhi-lo], p.lowFirst)
		if err != nil {
			return exIllegalValue, err.Error()
		}
		min, max, ok := p.paramBounds(r)
		if !ok {
			return exIllegalValue, fmt.Sprintf("no bounds known for %s", r.Name)
		}
		if (min != nil && v < *min) || (max != nil && v > *max) {
			return exIllegalValue, fmt.Sprintf("%s = %g is outside the model's bounds for %s.%s", r.Name, v, r.Write.Command, r.Write.Param)
		}
	}
	return 0, ""
}

// paramBounds finds the model's bounds for the parameter a register maps to.
func (p *plcRunner) paramBounds(r *Register) (min, max *float64, ok bool) {
	m := p.cfg.model
	if m == nil {
		return nil, nil, false
	}
	for _, c := range m.Commands {
		if c.Name != r.Write.Command {
			continue
		}
		for _, prm := range c.Params {
			if prm.Name == r.Write.Param {
				return prm.Min, prm.Max, true
			}
		}
	}
	return nil, nil, false
}
