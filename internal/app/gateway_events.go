package app

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/broker"
	"github.com/rampart-iot/rampart/internal/journal"
)

// gatewayEventQueue bounds gateway events waiting for the journal; the
// broker never blocks on them (a flood is summarised by the drop count).
const gatewayEventQueue = 1024

// maxGatewayEventBytes: a gateway event is a few hundred bytes.
const maxGatewayEventBytes = 4096

var gatewayEventKinds = map[string]string{
	api.GatewayWrite: journal.OutcomeSuccess, api.GatewayRefused: journal.OutcomeDenied,
	api.GatewayFault: journal.OutcomeFailure, api.GatewayRecovered: journal.OutcomeSuccess,
}

// gatewayEvents journals what edge gateways report on
// devices/{id}/events/gateway (Modbus writes, refusals, southbound faults)
// as gateway.{kind}, actor device:{id}. The message is also stored as
// telemetry like any device event. The gateway is an ordinary device to
// the hub: this sink is the hub's only knowledge of gateways.
type gatewayEvents struct {
	next broker.Sink
	j    *journal.Journal
	log  *slog.Logger
	q    chan broker.Message
}

func newGatewayEvents(j *journal.Journal, log *slog.Logger) *gatewayEvents {
	return &gatewayEvents{j: j, log: log, q: make(chan broker.Message, gatewayEventQueue)}
}

// wrap puts the sink in front of next.
func (g *gatewayEvents) wrap(next broker.Sink) broker.Sink {
	g.next = next
	return g
}

func (g *gatewayEvents) Ingest(m broker.Message) {
	g.next.Ingest(m)
	if m.Topic != "devices/"+m.DeviceID+"/events/gateway" {
		return
	}
	select {
	case g.q <- m:
	default:
		g.log.Warn("gateway event queue full; dropping event", "device", m.DeviceID)
	}
}

// run journals queued events until the returned func is called.
func (g *gatewayEvents) run() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				for { // drain what arrived before the stop
					select {
					case m := <-g.q:
						g.record(context.Background(), m)
					default:
						return
					}
				}
			case m := <-g.q:
				g.record(ctx, m)
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func (g *gatewayEvents) record(ctx context.Context, m broker.Message) {
	var ev api.GatewayEvent
	outcome, ok := "", false
	if len(m.Payload) <= maxGatewayEventBytes && json.Unmarshal(m.Payload, &ev) == nil {
		outcome, ok = gatewayEventKinds[ev.Kind]
	}
	if !ok {
		g.log.Warn("dropping malformed gateway event", "device", m.DeviceID)
		return
	}
	detail := map[string]string{}
	put := func(k, v string) {
		if v != "" {
			if len(v) > 200 {
				v = strings.ToValidUTF8(v[:200], "") // the journal refuses broken UTF-8
			}
			detail[k] = v
		}
	}
	num := func(k string, v int) {
		if v != 0 {
			detail[k] = strconv.Itoa(v)
		}
	}
	put("source", ev.Source)
	put("plc", ev.PLC)
	num("function", ev.Function)
	num("address", ev.Address)
	num("count", ev.Count)
	put("role", ev.Role)
	put("client", ev.Client)
	put("command", ev.CommandID)
	put("code", ev.Code)
	put("message", ev.Message)
	put("device_time", ev.At)
	if err := g.j.Record(ctx, journal.Event{Actor: "device:" + m.DeviceID, Tenant: m.TenantID, Action: "gateway." + ev.Kind,
		Target: m.DeviceID, Outcome: outcome, Detail: detail}); err != nil {
		g.log.Error("journal write failed", "action", "gateway."+ev.Kind, "err", err)
	}
}

var _ broker.Sink = (*gatewayEvents)(nil)
