package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// hook is the engine's only hook. Every decision denies unless this code
// positively allows it (mochi allows when ANY hook allows; there is no
// other hook).
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "rampart" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnDisconnect,
		mqtt.OnPacketRead, mqtt.OnSubscribed, mqtt.OnUnsubscribed, mqtt.OnPublished,
		mqtt.OnSelectSubscribers, mqtt.OnWill, mqtt.OnPublish, mqtt.OnSubscribe,
	}, []byte{b})
}

func (h *hook) session(cl *mqtt.Client) *session {
	h.b.mu.RLock()
	defer h.b.mu.RUnlock()
	return h.b.sessions[cl]
}

// ident returns a copy of the client's identity, read under the lock (the
// rotation flow changes it).
func (h *hook) ident(cl *mqtt.Client) (Identity, bool) {
	h.b.mu.RLock()
	defer h.b.mu.RUnlock()
	s := h.b.sessions[cl]
	if s == nil {
		return Identity{}, false
	}
	return s.id, true
}

// refuse sends a CONNACK with code and returns it as the error that makes
// the engine drop the connection without creating a session.
func (h *hook) refuse(cl *mqtt.Client, code packets.Code, action, reason string, id Identity) error {
	h.b.observe(Observation{Kind: ObservedAuthFailure, DeviceID: id.DeviceID, TenantID: id.TenantID, Remote: cl.Net.Remote})
	h.b.m.authFailures.Inc()
	wire := code
	if cl.Properties.ProtocolVersion < 5 {
		// MQTT 3.1.1 has only return codes 1-5; mochi maps some v5 codes
		// itself, these it would send verbatim.
		switch code {
		case packets.ErrNotAuthorized:
			wire = packets.Err3NotAuthorized
		case packets.ErrConnectionRateExceeded:
			wire = packets.Err3ServerUnavailable
		}
	}
	_ = h.b.srv.SendConnack(cl, wire, false, nil)
	detail := map[string]string{"reason": reason, "remote": cl.Net.Remote, "client_id": truncate(cl.ID, 128)}
	h.b.recordAuthFailure(journal.Event{Actor: actorOf(id, cl), Tenant: id.TenantID, Action: action, Outcome: "denied", Detail: detail})
	return code
}

func actorOf(id Identity, cl *mqtt.Client) string {
	switch {
	case id.DeviceID != "":
		return "device:" + id.DeviceID
	case id.AppID != "":
		return "app:" + id.AppID
	default:
		return "anonymous@" + remoteIP(cl.Net.Remote)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// OnConnect authenticates and authorizes the CONNECT: the identity from the
// client certificate (or username/password), the client ID, the will, bans
// and clone checks. A refusal answers with its reason code and leaves no
// session behind.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	ctx := context.Background()
	remote := cl.Net.Remote
	ip := remoteIP(remote)
	if h.b.flaps.banned("ip:" + ip) {
		h.b.m.bans.Inc()
		return h.refuse(cl, packets.ErrConnectionRateExceeded, "mqtt.connect", "address banned for flapping", Identity{})
	}
	var id Identity
	var err error
	tc, _ := cl.Net.Conn.(*tls.Conn)
	if tc == nil {
		return h.refuse(cl, packets.ErrNotAuthorized, "mqtt.connect", "not a TLS connection", id)
	}
	state := tc.ConnectionState()
	switch {
	case len(state.PeerCertificates) > 0:
		leaf := state.PeerCertificates[0]
		devID, ok := deviceIDFromCert(leaf)
		if !ok {
			return h.refuse(cl, packets.ErrNotAuthorized, "mqtt.connect", "certificate names no device", id)
		}
		id, err = h.b.o.Auth.AuthenticateDevice(ctx, devID, leaf)
		if err != nil {
			return h.refuse(cl, packets.ErrNotAuthorized, "mqtt.connect", "device refused: "+err.Error(), Identity{DeviceID: devID})
		}
	case pk.Connect.UsernameFlag && pk.Connect.PasswordFlag:
		id, err = h.b.o.Auth.AuthenticatePassword(ctx, string(pk.Connect.Username), secrets.Text(pk.Connect.Password))
		if err != nil {
			return h.refuse(cl, packets.ErrBadUsernameOrPassword, "mqtt.connect", "bad username or password", id)
		}
	default:
		return h.refuse(cl, packets.ErrNotAuthorized, "mqtt.connect", "no client certificate and no credentials", id)
	}
	key := "id:" + id.DeviceID + id.AppID
	if h.b.flaps.banned(key) {
		h.b.m.bans.Inc()
		return h.refuse(cl, packets.ErrConnectionRateExceeded, "mqtt.connect", "identity banned for flapping", id)
	}
	if ban := h.b.flaps.connect(key, "ip:"+ip); ban > 0 {
		h.b.m.bans.Inc()
		h.b.record(journal.Event{Actor: actorOf(id, cl), Tenant: id.TenantID, Action: "mqtt.banned", Outcome: "success",
			Detail: map[string]string{"reason": "flapping", "for": ban.String(), "remote": ip}})
		return h.refuse(cl, packets.ErrConnectionRateExceeded, "mqtt.connect", "flapping", id)
	}
	if strings.HasPrefix(pk.Connect.ClientIdentifier, "$") {
		return h.refuse(cl, packets.ErrClientIdentifierNotValid, "mqtt.connect", "client IDs starting with $ are reserved", id)
	}
	if id.Kind == KindDevice && pk.Connect.ClientIdentifier != id.DeviceID {
		return h.refuse(cl, packets.ErrClientIdentifierNotValid, "mqtt.connect",
			fmt.Sprintf("client ID %q is not the device ID", truncate(pk.Connect.ClientIdentifier, 64)), id)
	}
	if pk.Connect.WillFlag {
		if !h.mayWrite(id, pk.Connect.WillTopic) || (pk.Connect.WillRetain && id.Kind != KindDevice) {
			h.b.m.aclDenials.Inc()
			return h.refuse(cl, packets.ErrNotAuthorized, "mqtt.connect", "will topic not allowed: "+truncate(pk.Connect.WillTopic, 128), id)
		}
	}
	if h.b.o.Sessions != nil {
		if err := h.b.o.Sessions.Opened(ctx, id, remote); err != nil {
			return h.refuse(cl, packets.ErrNotAuthorized, "mqtt.connect", "refused: "+err.Error(), id)
		}
	}
	// The server decides the keepalive: never zero (a dead client would
	// hold its slot forever), never beyond maxKeepalive.
	ka := cl.State.Keepalive
	if ka < minKeepalive || ka > maxKeepalive {
		if ka < minKeepalive {
			ka = minKeepalive
		} else {
			ka = maxKeepalive
		}
		cl.State.Keepalive = ka
		cl.State.ServerKeepalive = true
	}
	lim := h.b.o.Limits
	maxSubs := lim.MaxSubscriptions
	if q := id.Quota; q != nil { // the device model's quota
		if q.PublishPerSec > 0 {
			lim.PublishPerSec = q.PublishPerSec
		}
		if q.PublishBurst > 0 {
			lim.PublishBurst = q.PublishBurst
		}
		if q.BytesPerSec > 0 {
			lim.BytesPerSec = q.BytesPerSec
		}
		if q.MaxSubscriptions > 0 {
			maxSubs = q.MaxSubscriptions
		}
	}
	s := &session{id: id, remote: remote, maxSubs: maxSubs,
		msgs:  newBucket(lim.PublishPerSec, float64(lim.PublishBurst), h.b.o.Now),
		bytes: newBucket(lim.BytesPerSec, lim.BytesPerSec*2, h.b.o.Now)}
	h.b.mu.Lock()
	h.b.sessions[cl] = s
	h.b.byConn[cl.Net.Conn] = cl
	h.b.byID[cl.ID] = s
	if id.Kind == KindDevice {
		h.b.deviceTenant[id.DeviceID] = id.TenantID
	}
	h.b.mu.Unlock()
	h.b.m.connects.Inc()
	if id.Kind == KindDevice {
		h.b.observe(Observation{Kind: ObservedConnect, DeviceID: id.DeviceID, TenantID: id.TenantID, Remote: remote})
	}
	return nil
}

// OnConnectAuthenticate allows only what OnConnect admitted.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	return h.session(cl) != nil
}

func (h *hook) mayWrite(id Identity, topic string) bool {
	switch id.Kind {
	case KindDevice:
		return DeviceMayPublish(id.DeviceID, id.State, topic)
	default:
		return false // applications send commands through the API (safety policies), not raw MQTT
	}
}

func (h *hook) mayRead(id Identity, filter string) bool {
	switch id.Kind {
	case KindDevice:
		return DeviceMaySubscribe(id.DeviceID, id.State, filter)
	case KindApp:
		inner := filter
		if in, ok := shareInner(filter); ok {
			inner = in
		}
		if inner == "" || len(inner) > maxTopicBytes {
			return false
		}
		if strings.HasPrefix(inner, "$") {
			return id.Admin && strings.HasPrefix(inner, "$SYS")
		}
		if !strings.ContainsAny(inner, "+#") {
			// A concrete topic: a subscription to one device's topic, or
			// the engine delivering a message (it asks for every delivery,
			// retained ones included). Only the app's own tenant's devices.
			devID, ok := DeviceIDFromTopic(inner)
			if !ok {
				return false
			}
			h.b.mu.RLock()
			tenant, known := h.b.deviceTenant[devID]
			h.b.mu.RUnlock()
			if !known && h.b.o.Tenants != nil {
				t, err := h.b.o.Tenants.TenantOf(context.Background(), devID)
				if err != nil {
					return false
				}
				tenant, known = t, true
				h.b.mu.Lock()
				h.b.deviceTenant[devID] = t
				h.b.mu.Unlock()
			}
			return known && tenant == id.TenantID
		}
		return true // wildcard filters: tenant isolation at delivery (OnSelectSubscribers and the check above)
	default:
		return false
	}
}

// OnACLCheck decides publishes (write) and subscriptions (read).
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	// One read lock for the identity: the engine asks this for every
	// publish and for every delivery.
	h.b.mu.RLock()
	s := h.b.sessions[cl]
	var id Identity
	if s != nil {
		id = s.id
	}
	h.b.mu.RUnlock()
	if s == nil {
		return false
	}
	var ok bool
	if write {
		ok = h.mayWrite(id, topic)
	} else {
		// The subscription quota is applied in OnSubscribe: this check also
		// runs for every delivery, which must not depend on the count.
		ok = h.mayRead(id, topic)
	}
	if !ok {
		h.b.m.aclDenials.Inc()
		h.b.recordAuthFailure(journal.Event{Actor: actorOf(id, cl), Tenant: id.TenantID, Action: "mqtt.acl", Outcome: "denied",
			Detail: map[string]string{"topic": truncate(topic, 256), "write": fmt.Sprint(write)}})
		if id.Kind == KindDevice {
			h.b.observe(Observation{Kind: ObservedACLDenied, DeviceID: id.DeviceID, TenantID: id.TenantID, Topic: topic})
		}
	}
	return ok
}

// OnWill re-checks the will when it is about to be sent.
func (h *hook) OnWill(cl *mqtt.Client, will mqtt.Will) (mqtt.Will, error) {
	id, found := h.ident(cl)
	if !found || !h.mayWrite(id, will.TopicName) {
		return mqtt.Will{}, errors.New("will not allowed")
	}
	return will, nil
}

// OnPacketRead enforces the per-client publish quotas.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type != packets.Publish {
		return pk, nil
	}
	s := h.session(cl)
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	// Let the engine's writer goroutines run: a publisher whose socket has
	// more data buffered never blocks, so without a yield a few busy
	// publishers keep the subscribers' writers off the CPU until the
	// scheduler preempts them (10 ms), their queues fill and the engine
	// drops deliveries (docs/performance.md).
	runtime.Gosched()
	if !s.msgs.take(1) || !s.bytes.take(float64(len(pk.Payload))) {
		h.b.m.quotaDrops.Inc()
		h.b.recordAuthFailure(journal.Event{Actor: actorOf(s.id, cl), Tenant: s.id.TenantID, Action: "mqtt.quota", Outcome: "denied",
			Detail: map[string]string{"reason": "publish rate"}})
		if cl.Properties.ProtocolVersion == 5 {
			_ = h.b.srv.DisconnectClient(cl, packets.ErrMessageRateTooHigh)
		}
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

// quotaFilter replaces filters beyond a client's subscription quota; the
// ACL refuses it ($-topics are never open), so the SUBACK refuses exactly
// those filters, at their positions.
const quotaFilter = "$rampart/subscription-quota-exceeded"

// OnSubscribe enforces the subscription quota on SUBSCRIBE.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	h.b.mu.RLock()
	s := h.b.sessions[cl]
	subs := 0
	if s != nil {
		subs = s.subs
	}
	h.b.mu.RUnlock()
	if s == nil {
		return pk
	}
	room := s.maxSubs - subs
	filters := append(packets.Subscriptions(nil), pk.Filters...)
	for i := range filters {
		if i >= room {
			filters[i].Filter = quotaFilter
		}
	}
	pk.Filters = filters
	return pk
}

// OnSubscribed and OnUnsubscribed count subscriptions against the quota.
func (h *hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	n := 0
	for _, c := range codes {
		if c < 0x80 {
			n++
		}
	}
	h.b.mu.Lock()
	if s := h.b.sessions[cl]; s != nil {
		s.subs += n
	}
	h.b.mu.Unlock()
}

func (h *hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	h.b.mu.Lock()
	if s := h.b.sessions[cl]; s != nil {
		s.subs -= len(pk.Filters)
		if s.subs < 0 {
			s.subs = 0
		}
	}
	h.b.mu.Unlock()
}

// OnSelectSubscribers drops every subscriber of another tenant than the
// publishing device's: an application's "#" sees only its own tenant.
func (h *hook) OnSelectSubscribers(subs *mqtt.Subscribers, pk packets.Packet) *mqtt.Subscribers {
	h.b.mu.RLock()
	defer h.b.mu.RUnlock()
	tenant := ""
	if s := h.b.byID[pk.Origin]; s != nil {
		tenant = s.id.TenantID
	} else if pk.Origin == hubClientID {
		if devID, ok := DeviceIDFromTopic(pk.TopicName); ok {
			tenant = h.b.deviceTenant[devID]
		}
	}
	allowed := func(clientID string) bool {
		s := h.b.byID[clientID]
		return tenant != "" && s != nil && s.id.TenantID == tenant
	}
	for id := range subs.Subscriptions {
		if !allowed(id) {
			delete(subs.Subscriptions, id)
		}
	}
	for group, m := range subs.Shared {
		for id := range m {
			if !allowed(id) {
				delete(m, id)
			}
		}
		if len(m) == 0 {
			delete(subs.Shared, group)
		}
	}
	for id := range subs.SharedSelected {
		if !allowed(id) {
			delete(subs.SharedSelected, id)
		}
	}
	return subs
}

// rotateRequest is the payload a must_rotate device publishes to
// devices/{id}/credentials/rotate.
type rotateRequest struct {
	Current string `json:"current"`
	New     string `json:"new"`
}

// OnPublish handles the secret rotation topic: the message is consumed here
// and never delivered or stored (it carries secrets).
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl == h.b.hub {
		return pk, nil // PublishToDevice already checked the topic
	}
	s := h.session(cl)
	id, found := h.ident(cl)
	if !found {
		return pk, packets.ErrRejectPacket
	}
	if id.Kind != KindDevice || pk.TopicName != "devices/"+id.DeviceID+"/credentials/rotate" {
		return pk, nil
	}
	deny := func(code packets.Code) (packets.Packet, error) {
		if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
			return pk, code
		}
		return pk, packets.ErrRejectPacket // v3 has no negative PUBACK; the message is dropped
	}
	var req rotateRequest
	if h.b.o.Rotator == nil || len(pk.Payload) > 4096 || json.Unmarshal(pk.Payload, &req) != nil || req.New == "" {
		return deny(packets.ErrPayloadFormatInvalid)
	}
	if err := h.b.o.Rotator.RotateSecret(context.Background(), id.DeviceID, secrets.Text(req.Current), secrets.Text(req.New), s.remote); err != nil {
		return deny(packets.ErrNotAuthorized)
	}
	h.b.mu.Lock()
	s.id.State.MustRotate = false
	h.b.mu.Unlock()
	return pk, packets.CodeSuccessIgnore // acknowledged, never forwarded
}

// OnPublished hands accepted device messages to telemetry storage.
func (h *hook) OnPublished(cl *mqtt.Client, pk packets.Packet) {
	if h.b.o.Sink == nil && h.b.o.Observer == nil {
		return
	}
	id, found := h.ident(cl)
	if !found || id.Kind != KindDevice || pk.Ignore {
		return
	}
	rest, _ := ownSubtree(id.DeviceID, pk.TopicName)
	root, _, _ := strings.Cut(rest, "/")
	if !devicePublishRoots[root] {
		return // credentials never reach storage or monitoring
	}
	if h.b.o.Observer != nil {
		o := Observation{Kind: ObservedPublish, DeviceID: id.DeviceID, TenantID: id.TenantID, Topic: pk.TopicName, Bytes: len(pk.Payload)}
		if root == "events" {
			o.Payload = pk.Payload
		}
		h.b.observe(o)
	}
	if h.b.o.Sink == nil {
		return
	}
	h.b.o.Sink.Ingest(Message{TenantID: id.TenantID, DeviceID: id.DeviceID, Topic: pk.TopicName,
		Payload: append([]byte(nil), pk.Payload...), ContentType: pk.Properties.ContentType, QoS: pk.FixedHeader.Qos,
		Received: h.b.o.Now()})
}

// OnDisconnect forgets the session.
func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.b.forget(cl)
}

func (b *Broker) forget(cl *mqtt.Client) {
	b.mu.Lock()
	s := b.sessions[cl]
	delete(b.sessions, cl)
	delete(b.byConn, cl.Net.Conn)
	if b.byID[cl.ID] == s {
		delete(b.byID, cl.ID)
	}
	b.mu.Unlock()
	if s != nil && b.o.Sessions != nil {
		b.o.Sessions.Closed(context.Background(), s.id, s.remote)
	}
}
