# cocoflow — make targets for the things a person does.
SHELL := bash
GO ?= go
ORT_DIR := .cache/ort
ORT_LIB := $(ORT_DIR)/libonnxruntime.so.1
export COCOFLOW_ORT_LIB := $(abspath $(ORT_LIB))
BIN := bin/cocoflow

.PHONY: demo test bench lint build ort clean prep check-shards paper-smoke paper-smoke-shards

## demo: set up and run the whole tiny study (prep -> train -> eval), print Table 1
demo: build
	./$(BIN) run experiments/tiny/prep.yaml
	./$(BIN) run experiments/tiny/train.yaml
	./$(BIN) run experiments/tiny/eval.yaml
	@echo; cat runs/tiny-eval/report/table1.md
	@echo; echo "report: runs/tiny-eval/report/report.md"

## test: the test suite (installs ONNX Runtime into .cache/ort first)
test: ort
	$(GO) test -count=1 ./...

## bench: throughput and latency benchmarks
bench: ort build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./pipeline/... ./stages/... ./models/...

## lint: gofmt and go vet
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "not gofmt-formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

## prep: the tiny data preparation alone (images -> captions -> masks -> latents -> triplets)
prep: build
	./$(BIN) run experiments/tiny/prep.yaml

## check-shards: read every prep shard with DuckDB (an independent Parquet reader)
check-shards: prep
	bash tools/check-shards.sh runs/tiny-prep

## paper-smoke: the paper configs end to end on signature fixtures (proves the wiring, not the numbers)
paper-smoke: ort
	bash tools/paper-smoke.sh

## paper-smoke-shards: paper-smoke, plus prep as 3 slices + the final run compared byte for byte
paper-smoke-shards: ort
	bash tools/paper-smoke.sh --shards

build:
	$(GO) build -o $(BIN) ./cmd/cocoflow

ort: $(ORT_LIB)
$(ORT_LIB):
	bash tools/install-ort.sh $(ORT_DIR)

clean:
	rm -rf bin runs
