# hdlgen – the two commands a new machine needs: `make demo` and `make test`.
# Each sets up .venv on its own the first time (Python ≥ 3.11, pip; Debian packages via scripts/).

VENV    := .venv
PY      := $(VENV)/bin/python
HDLGEN  := $(VENV)/bin/hdlgen
STAMP   := $(VENV)/.installed
OUT     := out
DIGITS  := examples/digits

.PHONY: setup demo lint test test-fast bench clean

setup: $(STAMP)

# torch 2.13.0 first: it installs a CPU build; a bare `torch` requirement pulls a CUDA build.
# `hdlgen boards --prepare`: each YoWASP tool's first run compiles it into ~/.cache/YoWASP, done here one tool
# at a time, because a first run beside another run of the same tool can rewrite that cache under it ("Bus error").
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,torch,qat]'
	sh scripts/install-system-packages.sh
	$(HDLGEN) boards --prepare
	touch $(STAMP)

demo: setup
	@mkdir -p $(OUT)
	$(HDLGEN) convert $(DIGITS)/digits_mlp.pt2 --data $(DIGITS)/digits_test.npz \
	    --calibration-data $(DIGITS)/digits_train.npz --ticks 16 --weight-bits 8 -o $(OUT)/digits_mlp.ttfs
	$(HDLGEN) verilog $(OUT)/digits_mlp.ttfs -o $(OUT)/verilog
	$(HDLGEN) sim $(OUT)/digits_mlp.ttfs --data $(DIGITS)/digits_test.npz --samples 20
	$(HDLGEN) build $(OUT)/digits_mlp.ttfs --board icebreaker -o $(OUT)/icebreaker
	$(HDLGEN) convert $(DIGITS)/digits_cnn.pt2 --data $(DIGITS)/digits_test.npz \
	    --calibration-data $(DIGITS)/digits_train.npz --ticks 16 --weight-bits 8 -o $(OUT)/digits_cnn.ttfs
	$(HDLGEN) sim $(OUT)/digits_cnn.ttfs --data $(DIGITS)/digits_test.npz --samples 20
	$(HDLGEN) build $(OUT)/digits_cnn.ttfs --board icebreaker -o $(OUT)/icebreaker_cnn
	$(HDLGEN) report $(OUT)/digits_mlp.ttfs --data $(DIGITS)/digits_test.npz --build $(OUT)/icebreaker \
	    -o $(OUT)/digits_mlp.html
	$(HDLGEN) report $(OUT)/digits_cnn.ttfs --data $(DIGITS)/digits_test.npz --build $(OUT)/icebreaker_cnn \
	    -o $(OUT)/digits_cnn.html
	@echo "reports (open in a browser, offline): $(OUT)/digits_mlp.html $(OUT)/digits_cnn.html"

lint: setup
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q -n auto --dist loadfile

test-fast: lint
	$(PY) -m pytest -q -n auto --dist loadfile -m "not slow"

bench: setup
	$(PY) bench/fashion_mlp.py

clean:
	rm -rf $(OUT) sim_build .pytest_cache
