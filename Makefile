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

.PHONY: setup demo test test-fast train-default train-lite0 train-gender benchmarks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[train,serve,dev,ray,mesh,video,research,postgres]'
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
# has finished. Two first stages, resnet_fer_ms trained on FER2013 relabelled by the FER+ votes
# (soft targets) and on the web_faces photos cut out by the detector, checkpoints chosen on
# balanced accuracy over both validation parts: 80 epochs (expression-ferplus-long.json), and 40
# epochs with a dark band over the eyes of a fifth of the faces from the first epoch, seed 1
# (expression-ferplus-eyes.json). From each, two gentler one-cycle passes over the same data, the
# second with the eye band (expression-ferplus-refine.json, expression-ferplus-refine-eyes.json),
# and the mean of their weights (`emoscope average`). The two means are kept whole and their
# logits averaged (`emoscope ensemble`). The export fits the temperature, per-class offsets and
# valence thresholds on validation photos; its files go to src/emoscope/assets/. Last, each file
# gets its blendshape expert (`emoscope blendshape-expert`: the reading of the face mesh's
# blendshapes used with --mesh, fitted on web_faces train, its weight and calibration chosen on
# web_faces val).
RUNS ?= ../runs
EMOSCOPE = $(BIN)/emoscope

$(RUNS)/%/summary.json: | setup
	$(EMOSCOPE) train --config configs/shipped/$*.json --out $(RUNS)/$* --resume

# $(1): a first stage's run name; its two second stages and their mean, $(1)-mean
define second_stages
	$(EMOSCOPE) train --config configs/shipped/expression-ferplus-refine.json --init $(RUNS)/$(1)/last.pt \
		--out $(RUNS)/$(1)-refine --resume
	$(EMOSCOPE) train --config configs/shipped/expression-ferplus-refine-eyes.json --init $(RUNS)/$(1)/last.pt \
		--out $(RUNS)/$(1)-refine-eyes --resume
	$(EMOSCOPE) average $(RUNS)/$(1)-refine $(RUNS)/$(1)-refine-eyes --out $(RUNS)/$(1)-mean
endef

train-default: $(RUNS)/expression-ferplus-long/summary.json $(RUNS)/expression-ferplus-eyes/summary.json
	$(call second_stages,expression-ferplus-long)
	$(call second_stages,expression-ferplus-eyes)
	$(EMOSCOPE) ensemble $(RUNS)/expression-ferplus-long-mean $(RUNS)/expression-ferplus-eyes-mean \
		--out $(RUNS)/expression-ferplus-ensemble-eyes
	$(EMOSCOPE) export $(RUNS)/expression-ferplus-ensemble-eyes --out src/emoscope/assets/expression.onnx \
		--int8 src/emoscope/assets/expression-int8.onnx
	for model in expression expression-int8; do \
		$(EMOSCOPE) blendshape-expert src/emoscope/assets/$$model.onnx --data $(SHARED)/datasets/web_faces.zip \
			--split-file configs/splits/web-faces.csv || exit 1; done

# The pretrained candidate (configs/shipped/expression-lite0.json): EfficientNet-Lite0 with ImageNet
# weights from the package index, fine-tuned at 96 px on FER2013 with the FER+ votes plus FER2013's
# own label as three more votes, and web_faces, with head-turn, light, blur, small-face and noise
# augmentation; exported with class offsets fitted for macro-F1 within +-1 logit, then its
# blendshape expert. Files in $(RUNS)/expression-lite0/ (see docs/model-card.md for its numbers).
train-lite0: $(RUNS)/expression-lite0/summary.json
	$(EMOSCOPE) export $(RUNS)/expression-lite0 --out $(RUNS)/expression-lite0/expression.onnx \
		--int8 $(RUNS)/expression-lite0/expression-int8.onnx --offsets-for macro_f1 --offsets-cap 1
	for model in expression expression-int8; do \
		$(EMOSCOPE) blendshape-expert $(RUNS)/expression-lite0/$$model.onnx --data $(SHARED)/datasets/web_faces.zip \
			--split-file configs/splits/web-faces.csv || exit 1; done

train-gender: setup
	$(EMOSCOPE) train --config configs/shipped/gender.json --resume
	$(EMOSCOPE) export $(RUNS)/gender --out src/emoscope/assets/gender.onnx

benchmarks: setup
	$(BIN)/python benchmarks/bench_dataset.py
	$(BIN)/python benchmarks/bench_train.py
	$(BIN)/python benchmarks/bench_inference.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
