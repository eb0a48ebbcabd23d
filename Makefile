# The two commands of the README:
#   make demo   set up, then tune the CNN on scikit-learn's digits on this machine
#   make test   set up (venv, etcd, control plane, Prometheus), then run every test
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test system-deps control-plane dev-cluster lint crd

setup:
	./hack/setup.sh

demo: setup
	$(VENV)/bin/kubetune run examples/digits-quick.yaml

system-deps:
	./hack/install-system-deps.sh

control-plane: system-deps
	./hack/build-control-plane.sh

test: setup control-plane
	$(PY) -m ruff check .
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .

crd: setup
	$(VENV)/bin/kubetune crd > crds/tuningexperiments.kubetune.io.yaml
	cp crds/tuningexperiments.kubetune.io.yaml helm/kubetune/files/crds/

dev-cluster: setup control-plane
	$(VENV)/bin/kubetune dev-cluster up
