package firmware

// Defaults and limits, with their reasons.
var (
	// DefaultWaves is the default wave plan: a canary of 1%, then 10%,
	// half, everyone; each wave waits for the one before it.
	DefaultWaves = []int{1, 10, 50, 100}
)

const (
	// DefaultSuccessRate: a wave starts when 95% of the waves before it
	// succeeded.
	DefaultSuccessRate = 0.95
	// DefaultFailureThreshold: a rollout halts when more than 10% of the
	// devices offered so far failed.
	DefaultFailureThreshold = 0.10
	// maxWaves bounds a wave plan.
	maxWaves = 10
	// maxTags bounds a device's and a cohort's tags; maxTagLen each tag.
	maxTags, maxTagLen = 16, 64
	// maxReason bounds a device's failure reason as stored.
	maxReason = 512
	// MaxImageBytes is the largest image the hub stores (1 GiB).
	MaxImageBytes = 1 << 30
)
