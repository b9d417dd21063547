package gateway

import (
	"errors"
	"fmt"
	"math"
)

// width is how many 16-bit registers a type occupies.
func (r *Register) width() uint16 { return uint16(registerTypes[r.Type]) }

// decode turns raw registers into the engineering value (raw * scale).
// lowFirst: 32-bit values with the low word first.
func (r *Register) decode(regs []uint16, lowFirst bool) (float64, error) {
	if len(regs) != int(r.width()) {
		return 0, fmt.Errorf("register %s: want %d words, got %d", r.Name, r.width(), len(regs))
	}
	var raw float64
	switch r.Type {
	case "uint16":
		raw = float64(regs[0])
	case "int16":
		raw = float64(int16(regs[0]))
	case "uint32", "int32", "float32":
		hi, lo := regs[0], regs[1]
		if lowFirst {
			hi, lo = lo, hi
		}
		u := uint32(hi)<<16 | uint32(lo)
		switch r.Type {
		case "uint32":
			raw = float64(u)
		case "int32":
			raw = float64(int32(u))
		default:
			f := math.Float32frombits(u)
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return 0, fmt.Errorf("register %s holds a NaN or infinity", r.Name)
			}
			raw = float64(f)
		}
	default:
		return 0, fmt.Errorf("register %s: type %s is not a number", r.Name, r.Type)
	}
	return raw * r.Scale, nil
}

// errNotRepresentable: a value that does not fit the register exactly;
// it is refused, never clamped or rounded.
var errNotRepresentable = errors.New("value does not fit the register")

// encode turns an engineering value into raw registers: raw = value /
// scale, which must be an integer within the type's range (a float32 must
// round-trip within 1e-6 relative).
func (r *Register) encode(v float64, lowFirst bool) ([]uint16, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, errNotRepresentable
	}
	raw := v / r.Scale
	split := func(u uint32) []uint16 {
		hi, lo := uint16(u>>16), uint16(u)
		if lowFirst {
			return []uint16{lo, hi}
		}
		return []uint16{hi, lo}
	}
	if r.Type == "float32" {
		f := float32(raw)
		if math.IsInf(float64(f), 0) || math.Abs(float64(f)-raw) > 1e-6*math.Max(1, math.Abs(raw)) {
			return nil, fmt.Errorf("%w: %v is not a float32 within precision", errNotRepresentable, raw)
		}
		return split(math.Float32bits(f)), nil
	}
	n := math.Round(raw)
	if math.Abs(n-raw) > 1e-9*math.Max(1, math.Abs(raw)) {
		return nil, fmt.Errorf("%w: %v / scale %v = %v is not a whole number", errNotRepresentable, v, r.Scale, raw)
	}
	lo, hi := intRange[r.Type][0], intRange[r.Type][1]
	if n < lo || n > hi {
		return nil, fmt.Errorf("%w: raw %v is outside %s [%v, %v]", errNotRepresentable, n, r.Type, lo, hi)
	}
	switch r.Type {
	case "uint16":
		return []uint16{uint16(n)}, nil
	case "int16":
		return []uint16{uint16(int16(n))}, nil
	case "uint32":
		return split(uint32(n)), nil
	case "int32":
		return split(uint32(int32(n))), nil
	}
	return nil, fmt.Errorf("register %s: type %s is not a number", r.Name, r.Type)
}

// intRange is the raw range of each integer type.
var intRange = map[string][2]float64{
	"uint16": {0, math.MaxUint16}, "int16": {math.MinInt16, math.MaxInt16},
	"uint32": {0, math.MaxUint32}, "int32": {math.MinInt32, math.MaxInt32},
}
