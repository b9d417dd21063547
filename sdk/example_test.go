package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/rampart-iot/rampart/sdk"
	"github.com/rampart-iot/rampart/sdk/keystore"
)

// A device's whole life: enroll once, then connect at every boot and send
// readings. (Compiled, not run: it needs a hub.)
func Example() {
	ctx := context.Background()
	caPEM, err := os.ReadFile("/etc/device/hub-ca.pem") // written at provisioning
	if err != nil {
		log.Fatal(err)
	}
	prot := &keystore.KeyFile{Path: "/secure/keystore.key"}
	ks, err := keystore.Open("/data/device.keystore", prot)
	if errors.Is(err, os.ErrNotExist) {
		ks, err = keystore.Create("/data/device.keystore", prot)
	}
	if err != nil {
		log.Fatal(err)
	}
	dev, err := sdk.Load(ks)
	if errors.Is(err, sdk.ErrNotEnrolled) {
		token, _ := os.ReadFile("/etc/device/enrollment-token")
		dev, err = sdk.Enroll(ctx, ks, sdk.Enrollment{
			Hub:   "https://hub.example:8443",
			MQTT:  "hub.example:8883",
			Trust: sdk.Trust{CABundle: caPEM},
			Token: keystore.NewSecret(string(token)),
		})
	}
	if err != nil {
		log.Fatal(err)
	}
	c := sdk.Start(dev, sdk.Options{}) // works offline until the hub answers
	defer c.Close()
	type reading struct {
		Celsius float64 `json:"celsius"`
	}
	temp := sdk.TelemetryStream[reading](c, "temperature")
	for range time.Tick(10 * time.Second) {
		_ = temp.Send(reading{Celsius: 21.5})
	}
}

// Command handling with verification and local limits as middleware.
func ExampleChain() {
	setPoint := sdk.HandlerFunc(func(ctx context.Context, cmd *sdk.Command) (any, error) {
		return map[string]string{"applied": string(cmd.Params)}, nil
	})
	// A stand-in for the signed-command verifier of the safety work.
	signed := sdk.VerifierFunc(func(ctx context.Context, cmd *sdk.Command) error {
		if cmd.Signature == "" {
			return sdk.Reject("unsigned", "command %s carries no signature", cmd.ID)
		}
		return nil
	})
	// A local limit: the device refuses set points outside 5..30 °C whatever the hub says.
	limits := func(next sdk.Handler) sdk.Handler {
		return sdk.HandlerFunc(func(ctx context.Context, cmd *sdk.Command) (any, error) {
			var p struct{ Celsius float64 }
			_ = jsonUnmarshal(cmd.Params, &p)
			if p.Celsius < 5 || p.Celsius > 30 {
				return nil, sdk.Reject("out_of_bounds", "set point %.1f outside 5..30", p.Celsius)
			}
			return next.HandleCommand(ctx, cmd)
		})
	}
	h := sdk.Chain(setPoint, sdk.Verify(signed), limits, sdk.RejectExpired(nil))
	for _, cmd := range []*sdk.Command{
		{ID: "1", Name: "set_point", Params: []byte(`{"celsius":21}`)},
		{ID: "2", Name: "set_point", Params: []byte(`{"celsius":95}`), Signature: "sig"},
		{ID: "3", Name: "set_point", Params: []byte(`{"celsius":21}`), Signature: "sig"},
	} {
		res, err := h.HandleCommand(context.Background(), cmd)
		fmt.Println(cmd.ID, res, err)
	}
	// Output:
	// 1 <nil> command rejected (unsigned): command 1 carries no signature
	// 2 <nil> command rejected (out_of_bounds): set point 95.0 outside 5..30
	// 3 map[applied:{"celsius":21}] <nil>
}

// The reconnect wait is drawn uniformly below a ceiling that doubles per
// attempt up to a cap.
func ExampleBackoff() {
	ceiling := func(d time.Duration) time.Duration { return d } // show the ceiling instead of a draw
	for n := 0; n < 9; n++ {
		fmt.Print(sdk.Backoff(n, sdk.DefaultBackoffBase, sdk.DefaultBackoffMax, ceiling), " ")
	}
	fmt.Println()
	// Output:
	// 500ms 1s 2s 4s 8s 16s 32s 1m0s 1m0s
}
