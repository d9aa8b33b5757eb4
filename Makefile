# drover build, test and fleet targets. Run `make help` for the list.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GOBUILD := CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags "$(LDFLAGS)"
BINS := drover drover-agent drover-broker drover-coordinator
N ?= 6
FLEET := test/fleet/fleet.sh
STATICCHECK_VERSION ?= 2025.1.1

.PHONY: help build lint test unit e2e fleet-up fleet-down fleet-status demo bench clean

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
