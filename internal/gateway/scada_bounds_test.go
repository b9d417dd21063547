package gateway

import (
	"testing"

	"github.com/rampart-iot/rampart/api"
)

func TestSCADABounds(t *testing.T) {
	lo, hi := 0.0, 100.0
	m := &api.DeviceModel{Name: "m", Commands: []api.CommandSpec{{Name: "set", Params: []api.ParamSpec{{Name: "v", Type: "number", Min: &lo, Max: &hi}}}}}
	p := &plcRunner{cfg: &PLC{model: m, Registers: []Register{
		{Name: "sp", Function: "holding", Address: 10, Type: "uint16", Scale: 0.1, Write: &WriteSpec{Command: "set", Param: "v"}},
		{Name: "big", Function: "holding", Address: 20, Type: "uint32", Scale: 1, Write: &WriteSpec{Command: "set", Param: "v"}},
		{Name: "free", Function: "holding", Address: 30, Type: "uint16", Scale: 1},
	}}}
	for _, tc := range []struct {
		name string
		q    request
		ok   bool
	}{
		{"ok/within bounds (raw 500 = 50.0)", request{Function: fcWriteRegister, Addr: 10, Qty: 1, Regs: []uint16{500}}, true},
		{"fail/above the maximum (raw 1500 = 150.0)", request{Function: fcWriteRegister, Addr: 10, Qty: 1, Regs: []uint16{1500}}, false},
		{"ok/a register no command drives", request{Function: fcWriteRegister, Addr: 30, Qty: 1, Regs: []uint16{65535}}, true},
		{"fail/half of a 32-bit register", request{Function: fcWriteRegister, Addr: 21, Qty: 1, Regs: []uint16{7}}, false},
		{"ok/whole 32-bit register in range", request{Function: fcWriteMultipleRegs, Addr: 20, Qty: 2, Regs: []uint16{0, 99}}, true},
		{"fail/multi-register write crossing into a bounded one", request{Function: fcWriteMultipleRegs, Addr: 9, Qty: 2, Regs: []uint16{1, 2000}}, false},
		{"ok/reads are not judged here", request{Function: 3, Addr: 10, Qty: 1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex, why := p.scadaBounds(tc.q)
			if (ex == 0) != tc.ok {
				t.Fatalf("exception %d (%s), want ok=%v", ex, why, tc.ok)
			}
			if !tc.ok && ex != exIllegalValue {
				t.Fatalf("exception %d, want 03", ex)
			}
		})
	}
}
