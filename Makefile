# drover build, test and fleet targets. Run `make help` for the list.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GOBUILD := CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
BINS := drover drover-agent drover-broker drover-coordinator
N ?= 6
FLEET := test/fleet/fleet.sh
STATICCHECK_VERSION ?= v0.8.2

.PHONY: help build lint test unit compat e2e fleet-up fleet-down fleet-status demo bench bench-apply clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

build: ## four static linux/amd64 binaries in bin/
	@mkdir -p bin
	$(GOBUILD) -o bin/drover ./provisioner/cmd/drover
	$(GOBUILD) -o bin/drover-agent ./agent/cmd/drover-agent
	$(GOBUILD) -o bin/drover-broker ./broker/cmd/drover-broker
	$(GOBUILD) -o bin/drover-coordinator ./broker/cmd/drover-coordinator

lint: ## go vet + staticcheck
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

clean:
	rm -rf bin

test: ## unit tests, franz-go's own suite against drover-broker, then the end-to-end tests on a local fleet
	$(MAKE) unit
	$(MAKE) compat
	$(MAKE) e2e

compat: ## franz-go's kgo integration suite (module cache): one broker RF=1, then 3 coordinators + 3 brokers RF=3
	broker/kafka/testdata/run-kgo-suite.sh
	broker/kafka/testdata/run-kgo-suite-cluster.sh

KAFKAJS_DIR ?= /tmp/drover-kafkajs

unit: ## unit and in-process integration tests (real clients: franz-go, sarama, kafka-go, kcat, kafkajs)
	@if command -v npm >/dev/null && [ ! -d $(KAFKAJS_DIR)/node_modules/kafkajs ]; then \
	  npm install --silent --prefix $(KAFKAJS_DIR) kafkajs@2.2.4 >/dev/null 2>&1 || echo "!!! could not npm install kafkajs: its test will skip"; fi
	@# -json + testsummary: one line per package, every skip with its reason, failures in full
	set -o pipefail; DROVER_KAFKAJS=$(KAFKAJS_DIR) $(GO) test -count=1 -timeout 25m -json ./... 2>&1 | $(GO) run ./test/testsummary

e2e: build ## end-to-end tests on a fleet it brings up and always tears down
	N=$(N) test/run-e2e.sh

fleet-up: ## boot a fleet of N nodes (default 6): make fleet-up N=6
	$(FLEET) up $(N)

fleet-down: ## stop the fleet, leaving nothing behind
	$(FLEET) down

fleet-status: ## show the fleet's nodes
	$(FLEET) status

demo: build ## boot a local 6-node fleet and provision a 3-coordinator, 3-broker cluster on it
	@command -v kcat >/dev/null || { apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -q kcat >/dev/null; }
	$(FLEET) down >/dev/null 2>&1 || true
	$(FLEET) up 6
	bin/drover provision -i inventories/local/inventory.yml -F /run/drover-fleet/0/ssh_config
	@echo
	@echo "The cluster is up (the table above is its health). Try it from this machine:"
	@echo "  echo hello | kcat -b 10.77.0.14:9092 -P -t demo && kcat -b 10.77.0.14:9092 -C -t demo -o beginning -e"
	@echo "  bin/drover health  -i inventories/local/inventory.yml -F /run/drover-fleet/0/ssh_config"
	@echo "  bin/drover restart -i inventories/local/inventory.yml -F /run/drover-fleet/0/ssh_config --rolling --canary"
	@echo "  make fleet-down    # when done"

bench: build ## all benchmarks (root; ~15 min): broker, provisioning vs Ansible, SSH fan-out; writes bench/RESULTS.md
	$(GO) run ./bench/broker -runs 3
	$(GO) run ./bench/provision -runs 3
	$(GO) run ./bench/fanout -runs 3 -n 50,200,500 -apply

bench-apply: build ## drover's no-op provision on 6 fleet hosts (the engine's own figure), printed only
	$(GO) run ./bench/provision -runs 3 -variants drover,drover-full -out ''
