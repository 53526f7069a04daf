# FogPark front door. Every target that needs the environment builds it first.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.fogpark-setup
PROTO_OUT := proto/parking_pb2.py proto/parking_pb2_grpc.py
EXTRAS ?= fog,cloud,hil,node,sim,pi,dev
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup proto demo test lint bench hil eval clean help

help:
	@echo "make demo   - run cloud + fog + emulated nodes on embedded defaults (Ctrl-C stops)"
	@echo "make test   - set up if needed, then run the whole test suite"
	@echo "make setup  - venv, Python packages, Debian packages (mosquitto), generated gRPC code"
	@echo "make proto  - regenerate gRPC/protobuf code from proto/parking.proto"
	@echo "make lint   - ruff, mypy (CPython tiers) and mypy on device/firmware against MicroPython stubs"
	@echo "make bench  - benchmarks that print numbers"
	@echo "make eval   - FogPark vs the baselines in Eclipse SUMO (EVAL_ARGS=--quick for a short run)"

setup: $(STAMP) $(PROTO_OUT)

$(STAMP): pyproject.toml deploy/install-system-packages.sh
	bash deploy/install-system-packages.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

proto: $(STAMP)
	rm -f $(PROTO_OUT)
	$(MAKE) $(PROTO_OUT)

$(PROTO_OUT) &: proto/parking.proto $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. \
	    --plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy --mypy_out=quiet:. \
	    --plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc --mypy_grpc_out=quiet:. \
	    proto/parking.proto

demo: setup
	$(VENV)/bin/fogpark-hil demo

test: setup
	$(PY) -m pytest -q -n 2 --dist loadgroup

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy proto/frame.py proto/serial_link.py proto/airtime.py fog cloud hil device/cli.py device/traces.py deploy/gen_tls.py
	$(PY) -m device.lint_firmware

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

eval: setup
	$(VENV)/bin/fogpark-fog evaluate --out var/eval $(EVAL_ARGS)

hil: setup
	$(VENV)/bin/fogpark-hil run --all

clean:
	rm -rf $(VENV) $(PROTO_OUT) proto/*_pb2*.pyi .pytest_cache .mypy_cache .ruff_cache
