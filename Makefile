# Quarry: `make run` starts the app on the demo data; `make test` runs every test (as CI does).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
PORT ?= 8501

.PHONY: run test lint demo bench clean-workspace

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m core demo --if-missing
	$(BIN)/streamlit run core/server.py --server.port $(PORT)

demo: $(STAMP)
	$(BIN)/python -m core demo

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/open_bench.py
	$(BIN)/python bench/profile_bench.py
	$(BIN)/python bench/recipe_bench.py
	$(BIN)/python bench/train_bench.py
	$(BIN)/python bench/explain_bench.py

clean-workspace:
	rm -rf data/workspace
