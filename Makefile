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
ifneq ($(wildcard $(SHARED)/models/face_landmarker.task),)
export EMOSCOPE_LANDMARKER_MODEL ?= $(SHARED)/models/face_landmarker.task
endif

.PHONY: setup demo test test-fast train-default train-gender benchmarks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,serve,dev,ray,mesh,video]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/emoscope analyze "$$($(BIN)/python -c 'import skimage, os; print(os.path.join(os.path.dirname(skimage.__file__), "data", "astronaut.png"))')" --annotate --out $(DEMO_OUT)
	@echo "annotated image: $(DEMO_OUT)/astronaut.annotated.jpg, results: $(DEMO_OUT)/results.json"

test: setup
	$(BIN)/python -m pytest -q

# The edit loop: everything but the tests marked slow (training, DDP, Optuna, the browser, whole videos).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# The shipped expression model's recipe, one command from scratch (configs/shipped/, run folders
# in ../runs beside the checkout). Each stage resumes after an interruption and is skipped once it
# has finished: resnet_fer_ms trained on FER2013 relabelled by the FER+ votes (soft targets) and on
# the web_faces photos cut out by the detector, checkpoints chosen on balanced accuracy over both
# validation parts (expression-ferplus.json); then two gentler one-cycle passes over the same data
# starting from it, the second with a dark band over the eyes of a fifth of the faces (sunglasses;
# expression-ferplus-refine.json, expression-ferplus-refine-eyes.json), and the mean of their
# weights (`emoscope average`). The export fits the temperature, per-class offsets and valence
# thresholds on validation photos; its files go to src/emoscope/assets/.
RUNS ?= ../runs
EMOSCOPE = $(BIN)/emoscope

$(RUNS)/expression-ferplus/summary.json: | setup
	$(EMOSCOPE) train --config configs/shipped/expression-ferplus.json --resume

train-default: $(RUNS)/expression-ferplus/summary.json
	$(EMOSCOPE) train --config configs/shipped/expression-ferplus-refine.json --resume
	$(EMOSCOPE) train --config configs/shipped/expression-ferplus-refine-eyes.json --resume
	$(EMOSCOPE) average $(RUNS)/expression-ferplus-refine $(RUNS)/expression-ferplus-refine-eyes \
		--out $(RUNS)/expression-ferplus-mean
	$(EMOSCOPE) export $(RUNS)/expression-ferplus-mean --out src/emoscope/assets/expression.onnx \
		--int8 src/emoscope/assets/expression-int8.onnx

train-gender: setup
	$(EMOSCOPE) train --config configs/shipped/gender.json --resume
	$(EMOSCOPE) export $(RUNS)/gender --out src/emoscope/assets/gender.onnx

benchmarks: setup
	$(BIN)/python benchmarks/bench_dataset.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_inference.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
