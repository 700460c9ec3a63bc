# yktgw — the two set-up commands are `make demo` and `make test`.
GO ?= go
BIN := bin/yktgw
PKGS := ./...

.PHONY: build demo demo-amqp demo-https test vet bench fuzz clean

build:
	$(GO) build -o $(BIN) ./cmd/yktgw

# The whole money path on the embedded default (SQLite spool, in-process SFTP bank simulator).
demo: build
	./$(BIN) demo

# The same over the other channels: RabbitMQ on 127.0.0.1:5672, an HTTPS bank on loopback.
demo-amqp: build
	./$(BIN) demo --channel amqp

demo-https: build
	./$(BIN) demo --channel https

# go vet, then every test with the race detector. Benchmarks are not part of it.
test: vet
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

vet:
	$(GO) vet $(PKGS)

# Benchmarks of DESIGN.md, printed as ratios against a baseline measured in the same run:
# N records end to end through the real daemon vs openssl enc -sm4-cbc + OpenSSH sftp put
# (bench/, needs openssl, sftp, /usr/sbin/sshd), then the package benchmarks (crypto vs gmsm).
# BENCHFLAGS: e.g. -profile DIR (CPU profile per stage, top functions) or -keep DIR.
N ?= 1000000
REPS ?= 3
bench: build
	$(GO) run ./bench -n $(N) -reps $(REPS) -bin $(BIN) -nobuild $(BENCHFLAGS)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1x ./gateway/ ./banks/format/ ./crypto/

# Short fuzzing of every parser (FUZZTIME per target).
FUZZTIME ?= 10s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf bin
