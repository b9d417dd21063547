package broker

import "strings"

// Topic rules. A device owns the subtree devices/{id}/ and nothing else:
//
//	publish:   devices/{id}/telemetry[/...], devices/{id}/events[/...],
//	           devices/{id}/acks[/...], devices/{id}/credentials/rotate
//	subscribe: devices/{id}/commands, devices/{id}/firmware,
//	           devices/{id}/credentials (each optionally with a /suffix),
//	           never a wildcard, never $SYS.
//
// A quarantined device may publish only to devices/{id}/events; a device
// that must rotate its secret may publish only to its rotate topic.

// devicePublishRoots are the second-level topics a device may publish to.
var devicePublishRoots = map[string]bool{"telemetry": true, "events": true, "acks": true}

// deviceSubscribeRoots are the second-level topics a device may subscribe to.
var deviceSubscribeRoots = map[string]bool{"commands": true, "firmware": true, "credentials": true}

// validTopicName reports whether s is a valid MQTT topic name for PUBLISH:
// non-empty, no wildcards, no NUL, within the length limit.
func validTopicName(s string) bool {
	return s != "" && len(s) <= maxTopicBytes && !strings.ContainsAny(s, "+#\x00")
}

// ownSubtree returns the part of topic after devices/{id}/, or false.
func ownSubtree(id, topic string) (string, bool) {
	prefix := "devices/" + id + "/"
	if id == "" || !strings.HasPrefix(topic, prefix) {
		return "", false
	}
	return topic[len(prefix):], true
}

// DeviceMayPublish decides a device's PUBLISH (and will) topic.
func DeviceMayPublish(id string, st DeviceState, topic string) bool {
	if !validTopicName(topic) {
		return false
	}
	rest, ok := ownSubtree(id, topic)
	if !ok || rest == "" {
		return false
	}
	root, _, _ := strings.Cut(rest, "/")
	switch {
	case st.MustRotate:
		return rest == "credentials/rotate"
	case st.Quarantined:
		return root == "events"
	default:
		return devicePublishRoots[root] || rest == "credentials/rotate"
	}
}

// DeviceMaySubscribe decides a device's SUBSCRIBE filter. Shared
// subscriptions ($share/group/filter) are judged on the inner filter.
func DeviceMaySubscribe(id string, st DeviceState, filter string) bool {
	if inner, ok := shareInner(filter); ok {
		filter = inner
	}
	if filter == "" || len(filter) > maxTopicBytes || strings.ContainsAny(filter, "+#\x00") {
		return false
	}
	rest, ok := ownSubtree(id, filter)
	if !ok || rest == "" {
		return false
	}
	root, _, _ := strings.Cut(rest, "/")
	if st.MustRotate {
		return root == "credentials"
	}
	return deviceSubscribeRoots[root]
}

// shareInner returns the filter inside $share/{group}/{filter}.
func shareInner(filter string) (string, bool) {
	rest, ok := strings.CutPrefix(filter, "$share/")
	if !ok {
		return "", false
	}
	_, inner, ok := strings.Cut(rest, "/")
	return inner, ok
}

// DeviceIDFromTopic returns the device ID of a devices/{id}/... topic.
func DeviceIDFromTopic(topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, "devices/")
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "/")
	return id, ok && id != ""
}
