# fenqi — make run: the whole system on one machine; make test: every test.
GO ?= go
export GOFLAGS := -buildvcs=false

.PHONY: all build run test test-short fuzz fuzz-brief bench bench-recompute bench-timers vet fmt compose-check clean

all: build

build:
	$(GO) build -o bin/ ./cmd/...

# The main job on the embedded default: an in-process Kafka-protocol broker
# (kfake) on 127.0.0.1:9092, a redis-server on a free port (or in-process
# miniredis where none is installed), simulated traffic, decisions printed.
# Data stays in .fenqi-data/ across runs; Ctrl-C stops everything cleanly.
run: build
	./bin/fenqid -embedded -simulate -print-decisions -log-format text -http-addr 127.0.0.1:8080 $(ARGS)

# Every test, with the race detector, against a real redis-server it starts
# itself and an in-process kfake broker over TCP.
test:
	@command -v redis-server >/dev/null || { echo "make test needs redis-server on PATH (apt-get install redis-server)"; exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m ./...
	$(MAKE) --no-print-directory fuzz-brief

# The fuzz targets (decoder in both modes, the decoder against its oracle,
# the policy loader, the state codec), each from its committed seed corpus
# (testdata/fuzz/): FUZZTIME each (make test: 10,000 inputs each, a count and
# not a duration: Go 1.26's fuzz coordinator can fail a target with a bare
# "context deadline exceeded" when a -fuzztime duration ends on a busy
# machine, go.dev/issue/75804, fixed in Go 1.27; make fuzz: 2m each).
FUZZ_TARGETS := events:FuzzDecodeStructured events:FuzzDecodeBinary events:FuzzDecodeMatchesOracle policy:FuzzParse state/engine:FuzzDecode
FUZZTIME ?= 10000x
fuzz-brief:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzz $$pkg $$fn $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s ./$$pkg/ >/tmp/fenqi-fuzz.log 2>&1 || { cat /tmp/fenqi-fuzz.log; exit 1; }; \
	done

fuzz:
	$(MAKE) --no-print-directory fuzz-brief FUZZTIME=$${FUZZTIME:-2m}

# Performance figures, printed (never asserted): the state engine's rows
# side by side on one redis-server (a) a minimal script per batch of 500,
# (b) per event, (c) fenqi's Prepare+Commit per batch of 500, (d) the whole
# pipeline draining 100,000 events, with Redis and Go CPU per event, in
# FENQI_BENCH_ROUNDS rounds (default 3) and their medians, and the p50/p99
# latency at 70% of (d)'s median rate (FENQI_BENCH_CPUPROFILE=file writes a
# CPU profile of the pipeline's process during (d), the last round's);
# Redis bytes per user;
# whole-pipeline drain, tracing cost and a shadow policy's cost (with/without,
# one run); decoder and scoring costs.
bench:
	$(GO) test -run '^$$' -bench 'StateEngineRows' -benchtime 1x ./consumers/ | grep -vE '^(goos|goarch|pkg|cpu|PASS|ok)'
	$(GO) test -run '^$$' -bench 'Apply' -benchtime 3s ./state/
	$(GO) test -run 'MemoryPerUser' -v ./state/ | grep -E 'bytes|ok'
	$(GO) test -run '^$$' -bench 'Pipeline' -benchtime 1x ./consumers/
	$(GO) test -run '^$$' -bench . -benchmem ./events/ ./scoring/...
	$(GO) test -run '^$$' -bench 'RecomputeUserCPU|CreditCheck' -benchmem ./jobs/

# Issue 3 figure: recompute 1,000,000 users with realistic state next to only
# reading them, in one run, on a redis-server the benchmark starts itself
# (~0.9 GB of Redis memory, ~4 min on 2 cores): each read and recompute pass
# runs back to back FENQI_BENCH_ROUNDS times (default 3) and the summary gives
# the median ratio. FENQI_BENCH_USERS=N to change the population.
bench-recompute:
	@command -v redis-server >/dev/null || { echo "make bench-recompute needs redis-server on PATH"; exit 1; }
	FENQI_BENCH_USERS=$${FENQI_BENCH_USERS:-1000000} $(GO) test -run '^$$' -bench '^BenchmarkRecompute1M$$' -benchtime 1x -timeout 90m ./jobs/

# Issue 4 figure: the overdue-timer index at 1,000,000 open bills (memory, one sweep).
bench-timers:
	@command -v redis-server >/dev/null || { echo "make bench-timers needs redis-server on PATH"; exit 1; }
	FENQI_BENCH_BILLS=$${FENQI_BENCH_BILLS:-1000000} $(GO) test -run '^$$' -bench '^BenchmarkTimerIndex$$' -benchtime 20x -timeout 30m ./state/

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

compose-check:
	docker-compose config -q

clean:
	rm -rf bin .fenqi-data

# Issue 14: the crash-and-restart suite (chaos/). Builds fenqid and runs it
# as a process (one or two instances) against a kfake broker process with a
# data dir and a redis-server with appendfsync always; writes a known
# workload, injects each fault several times (SIGKILL, SIGTERM, Redis killed,
# away, frozen with DEBUG SLEEP, the broker killed, a second instance killed,
# an instance cut off from Redis), compares state and decisions with a clean
# run and prints the table with the recovery of each fault (~15-25 min).
# FENQI_CHAOS_ONLY=<part of a fault's name> runs one fault;
# FENQI_CHAOS_<FAULT>_TIMES, FENQI_CHAOS_USERS change the counts (see chaos/chaos_test.go).
# chaos-short is the short version that make test runs too.
.PHONY: chaos chaos-short
chaos:
	@command -v redis-server >/dev/null || { echo "make chaos needs redis-server on PATH (apt-get install redis-server)"; exit 1; }
	FENQI_CHAOS=long $(GO) test -count=1 -v -timeout 90m -run '^TestChaos$$' ./chaos/

chaos-short:
	@command -v redis-server >/dev/null || { echo "make chaos-short needs redis-server on PATH (apt-get install redis-server)"; exit 1; }
	$(GO) test -race -count=1 -v -timeout 10m -run '^TestChaos$$' ./chaos/
