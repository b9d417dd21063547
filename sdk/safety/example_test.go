package safety_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/sdk/safety"
)

// A device pins the hub's command key (GET /pki/command-key) and keeps its
// own copy of its model's policy; every command payload goes through
// Admit before the handler runs. In the SDK's pipeline:
//
//	verify := sdk.Verify(sdk.VerifierFunc(func(_ context.Context, cmd *sdk.Command) error {
//		_, err := guard.Admit(cmd.Raw)
//		var r *safety.Rejection
//		if errors.As(err, &r) {
//			return sdk.Reject(r.Code, "%s", r.Message)
//		}
//		return err
//	}))
//	opts.Commands = sdk.Chain(handler, verify)
func ExampleGuard() {
	hubKey := ed25519.NewKeyFromSeed(make([]byte, 32)) // the hub's; here for the example
	max := 50.0
	model := api.DeviceModel{Name: "valve", Commands: []api.CommandSpec{
		{Name: "set_opening", Params: []api.ParamSpec{{Name: "percent", Type: api.ParamNumber, Min: new(float64), Max: &max}}},
	}}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	guard, err := safety.NewGuard(safety.GuardOptions{DeviceID: "dev_1", HubKey: hubKey.Public().(ed25519.PublicKey),
		Model: model, Now: func() time.Time { return now }})
	if err != nil {
		panic(err)
	}
	sign := func(seq uint64, params string) []byte {
		env := api.CommandEnvelope{ID: fmt.Sprint("cmd_", seq), DeviceID: "dev_1", Name: "set_opening", Params: []byte(params),
			Seq: seq, Nonce: fmt.Sprint("n", seq), IssuedAt: now.Format(safety.TimeFormat), ExpiresAt: now.Add(time.Minute).Format(safety.TimeFormat)}
		b, _ := safety.Sign(hubKey, &env)
		return b
	}
	first := sign(1, `{"percent":20}`)
	for _, payload := range [][]byte{first, first, sign(2, `{"percent":80}`)} {
		_, err := guard.Admit(payload)
		var r *safety.Rejection
		if errors.As(err, &r) {
			fmt.Println("refused:", r.Code)
			continue
		}
		fmt.Println("admitted")
	}
	// Output:
	// admitted
	// refused: replay
	// refused: policy
}
