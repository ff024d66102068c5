# The README's two commands: `make run` (the main job) and `make test`. Both build what they need.
VENV := .venv
# Offline machines keep MNIST beside the clone; elsewhere `sgan prepare` downloads it (checksummed).
MNIST_DIR ?= $(wildcard ../shared/data/mnist)
RUN_DIR ?= runs/mnist-seed
PRESET ?= seed
LABELS ?= 100
SEED ?= 0

.PHONY: env run test
env:
	scripts/make-env.sh

run: env
	$(VENV)/bin/sgan prepare $(if $(MNIST_DIR),--data $(MNIST_DIR)) --labels $(LABELS) --seed $(SEED) --run-dir $(RUN_DIR)
	$(VENV)/bin/sgan train --run-dir $(RUN_DIR) --preset $(PRESET)
	$(VENV)/bin/sgan evaluate --run-dir $(RUN_DIR)

test: env
	$(VENV)/bin/python -m pytest -q
