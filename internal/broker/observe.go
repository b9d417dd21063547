package broker

// ObservationKind is what the broker saw a device do.
type ObservationKind int

// Observation kinds.
const (
	ObservedPublish     ObservationKind = iota + 1 // an accepted publish
	ObservedConnect                                // an admitted CONNECT
	ObservedAuthFailure                            // a refused CONNECT naming the device
	ObservedACLDenied                              // a publish or subscription the ACL refused
)

// Observation feeds behaviour monitoring (anomaly detection).
type Observation struct {
	Kind     ObservationKind
	DeviceID string
	TenantID string
	Topic    string
	Bytes    int
	Payload  []byte // only for devices/{id}/events/... (the SDK's network reports); never retained
	Remote   string
}

// Observer receives observations. It must be cheap and must not block: it
// runs on the connection's goroutine.
type Observer interface {
	ObserveMQTT(Observation)
}

func (b *Broker) observe(o Observation) {
	if b.o.Observer != nil && o.DeviceID != "" {
		b.o.Observer.ObserveMQTT(o)
	}
}
