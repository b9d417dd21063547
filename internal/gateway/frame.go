package gateway

import (
	"encoding/binary"
	"errors"
	"io"
)

// Modbus function codes the secure server understands.
const (
	fcReadCoils          = 1
	fcReadDiscrete       = 2
	fcReadHolding        = 3
	fcReadInput          = 4
	fcWriteCoil          = 5
	fcWriteRegister      = 6
	fcWriteMultipleCoils = 15
	fcWriteMultipleRegs  = 16
)

// Modbus exception codes.
const (
	exIllegalFunction   = 0x01
	exIllegalAddress    = 0x02
	exIllegalValue      = 0x03
	exDeviceFailure     = 0x04
	exGatewayPath       = 0x0A
	exGatewayNoResponse = 0x0B
	mbapHeaderLen       = 7
	maxPDU              = 253
	maxReadRegs         = 125
	maxReadBits         = 2000
	maxWriteRegs        = 123
	maxWriteBits        = 1968
	mbapProtocolModbus  = 0
)

// tableOf names the data table a function code addresses ("" if the
// function is not supported).
func tableOf(fc byte) string {
	switch fc {
	case fcReadCoils, fcWriteCoil, fcWriteMultipleCoils:
		return "coil"
	case fcReadDiscrete:
		return "discrete"
	case fcReadHolding, fcWriteRegister, fcWriteMultipleRegs:
		return "holding"
	case fcReadInput:
		return "input"
	}
	return ""
}

func isWrite(fc byte) bool {
	return fc == fcWriteCoil || fc == fcWriteRegister || fc == fcWriteMultipleCoils || fc == fcWriteMultipleRegs
}

// mbap is a Modbus/TCP application header.
type mbap struct {
	TxID uint16
	Unit uint8
}

// errFrame: the byte stream is not Modbus/TCP; the connection is closed
// (there is no way to answer a frame whose length cannot be trusted).
var errFrame = errors.New("malformed Modbus/TCP frame")

// readFrame reads one MBAP frame: a 7-byte header whose length field
// counts the unit byte and the PDU (2 to 254), never allocating more than
// that.
func readFrame(r io.Reader, buf *[mbapHeaderLen + maxPDU]byte) (mbap, []byte, error) {
	h := buf[:mbapHeaderLen]
	if _, err := io.ReadFull(r, h); err != nil {
		return mbap{}, nil, err
	}
	proto := binary.BigEndian.Uint16(h[2:4])
	n := int(binary.BigEndian.Uint16(h[4:6]))
	if proto != mbapProtocolModbus || n < 2 || n > maxPDU+1 {
		return mbap{}, nil, errFrame
	}
	pdu := buf[mbapHeaderLen : mbapHeaderLen+n-1]
	if _, err := io.ReadFull(r, pdu); err != nil {
		return mbap{}, nil, err
	}
	return mbap{TxID: binary.BigEndian.Uint16(h[0:2]), Unit: h[6]}, pdu, nil
}

// appendFrame encodes a response frame.
func appendFrame(dst []byte, h mbap, pdu []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, h.TxID)
	dst = binary.BigEndian.AppendUint16(dst, mbapProtocolModbus)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(pdu)+1))
	dst = append(dst, h.Unit)
	return append(dst, pdu...)
}

// request is a decoded, validated request PDU.
type request struct {
	Function byte
	Addr     uint16
	Qty      uint16   // registers or bits covered
	Regs     []uint16 // values to write (6, 16)
	Bits     []bool   // values to write (5, 15)
}

// parseRequest decodes a request PDU. A non-zero exception code means
// the request is refused with that Modbus exception.
func parseRequest(pdu []byte) (request, byte) {
	if len(pdu) == 0 {
		return request{}, exIllegalFunction
	}
	q := request{Function: pdu[0]}
	body := pdu[1:]
	u16 := func(i int) uint16 { return binary.BigEndian.Uint16(body[i:]) }
	span := func(max uint16) byte {
		if q.Qty == 0 || q.Qty > max {
			return exIllegalValue
		}
		if int(q.Addr)+int(q.Qty) > 65536 {
			return exIllegalAddress
		}
		return 0
	}
	switch q.Function {
	case fcReadCoils, fcReadDiscrete, fcReadHolding, fcReadInput:
		if len(body) != 4 {
			return q, exIllegalValue
		}
		q.Addr, q.Qty = u16(0), u16(2)
		max := uint16(maxReadRegs)
		if q.Function <= fcReadDiscrete {
			max = maxReadBits
		}
		return q, span(max)
	case fcWriteCoil:
		if len(body) != 4 {
			return q, exIllegalValue
		}
		q.Addr, q.Qty = u16(0), 1
		switch u16(2) {
		case 0xFF00:
			q.Bits = []bool{true}
		case 0x0000:
			q.Bits = []bool{false}
		default:
			return q, exIllegalValue
		}
		return q, 0
	case fcWriteRegister:
		if len(body) != 4 {
			return q, exIllegalValue
		}
		q.Addr, q.Qty, q.Regs = u16(0), 1, []uint16{u16(2)}
		return q, 0
	case fcWriteMultipleCoils:
		if len(body) < 5 {
			return q, exIllegalValue
		}
		q.Addr, q.Qty = u16(0), u16(2)
		if ex := span(maxWriteBits); ex != 0 {
			return q, ex
		}
		nb := int(body[4])
		if nb != (int(q.Qty)+7)/8 || len(body) != 5+nb {
			return q, exIllegalValue
		}
		q.Bits = make([]bool, q.Qty)
		for i := range q.Bits {
			q.Bits[i] = body[5+i/8]&(1<<(i%8)) != 0
		}
		return q, 0
	case fcWriteMultipleRegs:
		if len(body) < 5 {
			return q, exIllegalValue
		}
		q.Addr, q.Qty = u16(0), u16(2)
		if ex := span(maxWriteRegs); ex != 0 {
			return q, ex
		}
		nb := int(body[4])
		if nb != 2*int(q.Qty) || len(body) != 5+nb {
			return q, exIllegalValue
		}
		q.Regs = make([]uint16, q.Qty)
		for i := range q.Regs {
			q.Regs[i] = binary.BigEndian.Uint16(body[5+2*i:])
		}
		return q, 0
	}
	return q, exIllegalFunction
}

// exception encodes an exception response PDU.
func exception(fc, code byte) []byte { return []byte{fc | 0x80, code} }

// readResponse encodes the answer to a read.
func readResponse(fc byte, regs []uint16, bits []bool) []byte {
	if bits != nil {
		out := []byte{fc, byte((len(bits) + 7) / 8)}
		out = append(out, make([]byte, out[1])...)
		for i, b := range bits {
			if b {
				out[2+i/8] |= 1 << (i % 8)
			}
		}
		return out
	}
	out := []byte{fc, byte(2 * len(regs))}
	for _, r := range regs {
		out = binary.BigEndian.AppendUint16(out, r)
	}
	return out
}

// writeResponse encodes the answer to a write (an echo, as the spec says).
func writeResponse(q request, pdu []byte) []byte {
	switch q.Function {
	case fcWriteCoil, fcWriteRegister:
		return append([]byte(nil), pdu[:5]...)
	}
	out := []byte{q.Function}
	out = binary.BigEndian.AppendUint16(out, q.Addr)
	return binary.BigEndian.AppendUint16(out, q.Qty)
}
