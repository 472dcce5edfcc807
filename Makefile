# Two commands for a fresh machine: `make demo` (set up + analyse a sample photo) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
SHARED ?= $(abspath ../shared)
STAMP   = $(VENV)/.installed
DEMO_OUT ?= demo-out

# Use the shared YuNet copy when it exists (offline machines); otherwise emoscope downloads it
# from the OpenCV Zoo into ~/.cache/emoscope with a checksum check.
export EMOSCOPE_SHARED := $(SHARED)
ifneq ($(wildcard $(SHARED)/models/face_detection_yunet.onnx),)
export EMOSCOPE_YUNET_MODEL ?= $(SHARED)/models/face_detection_yunet.onnx
endif

.PHONY: setup demo test train-default train-distilled benchmarks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,serve,dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/emoscope analyze "$$($(BIN)/python -c 'import skimage, os; print(os.path.join(os.path.dirname(skimage.__file__), "data", "astronaut.png"))')" --annotate --out $(DEMO_OUT)
	@echo "annotated image: $(DEMO_OUT)/astronaut.annotated.jpg, results: $(DEMO_OUT)/results.json"

test: setup
	$(BIN)/python -m pytest -q

# The default model's recipe (resumable: run it again after an interruption).
train-default: setup
	$(BIN)/emoscope train --config configs/fer2013-default.json --resume

# The shipped model's recipe (online distillation): resnet_fer_m (teacher), its int8 export, then
# resnet_fer_ms taught by it batch by batch (each stage resumes; run it again after an interruption).
train-distilled: train-default
	$(BIN)/emoscope export runs/fer2013-default --out runs/fer2013-default/teacher.onnx \
		--int8 runs/fer2013-default/teacher-int8.onnx --equalize
	$(BIN)/emoscope train --config configs/fer2013-ms-online.json --resume

benchmarks: setup
	$(BIN)/python benchmarks/bench_dataset.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_inference.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
