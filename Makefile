# The README's two commands: `make run` (the main job) and `make test`. Both build what they need.
VENV := .venv
# Offline machines keep MNIST beside the clone; elsewhere the pipeline downloads it (checksummed).
MNIST_DIR ?= $(wildcard ../shared/data/mnist)
OUTPUT_ROOT ?= runs/pipeline
# 2 Horovod workers x 16 images = the reference's global batch of 32 on this project's 2-core machines.
WORKERS ?= 2
BATCH_SIZE ?= 16

.PHONY: env run test
env:
	scripts/make-env.sh

run: env
	$(VENV)/bin/sgan pipeline --preset seed --labels 100 --seed 0 --workers $(WORKERS) --batch-size $(BATCH_SIZE) \
		$(if $(MNIST_DIR),--data $(MNIST_DIR)) --output-root $(OUTPUT_ROOT)

test: env
	scripts/test-hosts.sh
	$(VENV)/bin/python -m pytest -q
