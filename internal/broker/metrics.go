package broker

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connects, handshakeFailures, authFailures, aclDenials, quotaDrops, bans, panics, connRefused prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	c := func(name, help string) prometheus.Counter {
		ctr := prometheus.NewCounter(prometheus.CounterOpts{Name: "rampart_mqtt_" + name, Help: help})
		if reg != nil {
			reg.MustRegister(ctr)
		}
		return ctr
	}
	return &metrics{
		connects:          c("connects_total", "MQTT sessions admitted."),
		handshakeFailures: c("handshake_failures_total", "TLS handshakes that failed or timed out."),
		authFailures:      c("auth_failures_total", "CONNECTs refused."),
		aclDenials:        c("acl_denials_total", "Publishes and subscriptions denied."),
		quotaDrops:        c("quota_drops_total", "Publishes dropped for exceeding a quota."),
		bans:              c("bans_total", "Connections refused by a flapping ban."),
		panics:            c("panics_recovered_total", "Connection handlers that panicked and were recovered."),
		connRefused:       c("connections_refused_total", "TCP connections refused by per-address or total caps."),
	}
}
