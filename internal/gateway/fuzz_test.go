package gateway

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
)

// FuzzFrame feeds arbitrary bytes to the secure server's frame reader and
// request parser: no panic, no allocation beyond one frame, and every
// request that parses covers addresses that exist and carries exactly the
// values it claims.
func FuzzFrame(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 1, 0, 0, 0, 6, 7, 3, 0, 100, 0, 10},           // read 10 holding
		{0, 1, 0, 0, 0, 6, 7, 6, 0, 100, 0, 1},            // write single register
		{0, 1, 0, 0, 0, 9, 7, 16, 0, 100, 0, 1, 2, 0, 5},  // write multiple
		{0, 1, 0, 0, 0, 8, 7, 15, 0, 0, 0, 9, 2, 0xff, 1}, // write 9 coils
		{0, 1, 0, 0, 0, 6, 7, 5, 0, 1, 0xff, 0},           // write coil
		{0, 1, 0, 0, 0, 6, 7, 3, 0xff, 0xff, 0, 2},        // past 65535
		{0, 1, 0, 1, 0, 2, 7, 3},                          // wrong protocol
		{0, 1, 0, 0, 0xff, 0xff, 7},                       // huge length
		{0, 1, 0, 0, 0, 3, 7, 0x2b, 0x0e},                 // unsupported function
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var buf [mbapHeaderLen + maxPDU]byte
		r := bytes.NewReader(in)
		for {
			h, pdu, err := readFrame(r, &buf)
			if err != nil {
				if !errors.Is(err, errFrame) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(pdu) < 1 || len(pdu) > maxPDU {
				t.Fatalf("PDU of %d bytes", len(pdu))
			}
			q, ex := parseRequest(pdu)
			if ex == 0 {
				if q.Qty == 0 || int(q.Addr)+int(q.Qty) > 65536 || tableOf(q.Function) == "" {
					t.Fatalf("accepted %+v", q)
				}
				if isWrite(q.Function) && len(q.Regs)+len(q.Bits) != int(q.Qty) {
					t.Fatalf("write of %d values claims %d", len(q.Regs)+len(q.Bits), q.Qty)
				}
				if isWrite(q.Function) {
					_ = writeResponse(q, pdu)
				}
				_ = authorize([]Rule{{PLC: "p", Functions: []int{int(q.Function)}, ranges: [][2]int{{0, 65535}}}}, "p", q)
			} else if ex != exIllegalFunction && ex != exIllegalAddress && ex != exIllegalValue {
				t.Fatalf("exception %#x", ex)
			}
			out := appendFrame(nil, h, exception(pdu[0], exIllegalFunction))
			if len(out) != mbapHeaderLen+2 {
				t.Fatal("bad exception frame")
			}
		}
	})
}

// FuzzParseConfig: any gw.yaml either parses into a configuration that
// keeps every invariant validation promises, or fails with an error.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(validYAML))
	f.Add([]byte("name: x\nplcs: [{name: a, address: 'h:1', registers: [{name: r, function: coil, address: 65535, type: bool}]}]"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Parse(in, "gw.yaml")
		if err != nil {
			return
		}
		for _, p := range c.PLCs {
			if p.Timeout <= 0 || p.PollInterval <= 0 || *p.Retries < 0 || len(p.Registers) == 0 {
				t.Fatalf("PLC %+v", p)
			}
			for _, r := range p.Registers {
				if int(r.Address)+int(r.width()) > 65536 || r.Scale == 0 || math.IsNaN(r.Scale) || r.width() == 0 {
					t.Fatalf("register %+v", r)
				}
			}
		}
	})
}

// FuzzRegisterCodec: whatever the value and type, encode never panics and
// what it encodes decodes back to the value (nothing is clamped).
func FuzzRegisterCodec(f *testing.F) {
	f.Add(uint8(0), 1.0, 21.5)
	f.Add(uint8(4), 0.001, -3.25)
	f.Fuzz(func(t *testing.T, ty uint8, scale, v float64) {
		types := []string{"uint16", "int16", "uint32", "int32", "float32"}
		if scale == 0 || math.IsNaN(scale) || math.IsInf(scale, 0) {
			return
		}
		r := Register{Name: "r", Type: types[int(ty)%len(types)], Scale: scale}
		raw, err := r.encode(v, ty&0x80 != 0)
		if err != nil {
			return
		}
		back, err := r.decode(raw, ty&0x80 != 0)
		if err != nil {
			t.Fatalf("decode of encoded %v: %v", v, err)
		}
		if math.Abs(back-v) > 1e-5*math.Max(1, math.Abs(v)) {
			t.Fatalf("%s scale %v: %v -> %v -> %v", r.Type, scale, v, raw, back)
		}
	})
}
