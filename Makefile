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
# in ../runs beside the checkout). Each stage resumes after an interruption and is skipped once
# its export exists: a FER2013 teacher (resnet_fer_m), a FER2013 student (resnet_fer_ms) taught
# online by the teacher's int8 export, then the shipped resnet_fer_ms trained on FER2013 (taught
# by that student) and on the web_faces photos cut out by the detector, and a second, gentler
# one-cycle pass over the same data starting from it (expression-refine.json); its exports go to
# src/emoscope/assets/.
RUNS ?= ../runs
EMOSCOPE = $(BIN)/emoscope

$(RUNS)/fer2013-teacher/teacher-int8.onnx: | setup
	$(EMOSCOPE) train --config configs/shipped/teacher.json --resume
	$(EMOSCOPE) export $(RUNS)/fer2013-teacher --out $(RUNS)/fer2013-teacher/teacher.onnx --int8 $@

$(RUNS)/fer2013-student/expression-int8.onnx: $(RUNS)/fer2013-teacher/teacher-int8.onnx
	$(EMOSCOPE) train --config configs/shipped/fer2013-student.json --resume
	$(EMOSCOPE) export $(RUNS)/fer2013-student --out $(RUNS)/fer2013-student/expression.onnx --int8 $@

$(RUNS)/expression-web/summary.json: $(RUNS)/fer2013-student/expression-int8.onnx
	$(EMOSCOPE) train --config configs/shipped/expression.json --resume

train-default: $(RUNS)/expression-web/summary.json
	$(EMOSCOPE) train --config configs/shipped/expression-refine.json --resume
	$(EMOSCOPE) export $(RUNS)/expression-refine --out src/emoscope/assets/expression.onnx \
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
