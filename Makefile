# Rampart — developer entry points. `make test` is what CI runs.
GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME ?= 20s

.PHONY: build test lint vet fmt-check unit bench bench-mqtt fuzz clean

build:
	$(GO) build -o bin/rampart ./cmd/rampart

# Full gate: formatting, vet, staticcheck, then every test with the race detector.
test: lint unit

lint: fmt-check vet
	$(GO) run $(STATICCHECK) ./...

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

# Benchmarks print figures; they never assert timings.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x ./...

# The hub's MQTT broker side by side with Mosquitto 2 (needs the mosquitto
# package); under 5 minutes, or BENCH_ARGS=-quick under 60 s. docs/performance.md.
bench-mqtt:
	$(GO) run ./bench/mqttbench $(BENCH_ARGS)

# Runs every Fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
