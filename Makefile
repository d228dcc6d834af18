# `make demo` and `make test` set everything up on a fresh Debian machine and do their job.
SHELL := /bin/bash
# Debian's CPython is built with PGO and LTO: the Python parts (the OS model, ingest) run
# ~15% faster on it than on an unoptimised build (docs/decisions.md). Any Python >= 3.11
# works; gcc and the Python headers build the audit parser's C core (without them the
# pure-Python parser is used).
PYTHON ?= $(shell test -x /usr/bin/python3.11 && echo /usr/bin/python3.11 || echo python3.11)
VENV := .venv
PY := $(VENV)/bin/python
DEBS := auditd laurel python3-audit strace gcc python3.11-dev iproute2 openjdk-17-jdk-headless \
	maven bpftrace chromium postgresql clang libbpf-dev bpftool
DEMO_HOME := $(CURDIR)/.home/demo
DEMO_LOG := tests/data/pipeline.audit.log
DEMO_OUTPUT := /tmp/ursprung-fixture/final/result.txt

.PHONY: all setup debs venv ebpf node neo4j graphiql schema demo test lint bench clean

all: test

setup: debs venv ebpf node neo4j graphiql

# Debian packages: the kernel audit tools, the benchmark's anchors, strace, the C compiler and
# Python headers (the parser's core), iproute2 (network namespaces of the Winnower cluster
# simulation), Java 17 and Maven (the Neo4j test server, tools/neo4j), bpftrace (the eBPF
# tracer and node collector; clang, libbpf-dev and bpftool build its faster compiled back end),
# Chromium (the GUI's browser tests drive it headless through
# Playwright) and Node.js
# (Neo4j's Cypher grammar checker). Installed only when missing; needs root for apt-get.
debs:
	@missing=""; \
	for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "warning: missing Debian packages (need root to install):$$missing"; fi; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py ursprung_graph/collectors/auditd/_records.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m compileall -q ursprung_graph  # `ursprung run` starts faster, even without write access
	touch $@

# The eBPF tracer's compiled back end (collectors/ebpf/: ursprung.bpf.c, a libbpf CO-RE
# program, and loader.c, its loader): vmlinux.h from the running kernel's BTF (bpftool), the
# program with clang -target bpf, a skeleton that embeds it, the loader linked to libbpf.
# Skipped with a warning where the tools or the kernel's BTF are missing (then bpftrace is
# the eBPF back end).
EBPF := ursprung_graph/collectors/ebpf
EBPF_BUILD := $(EBPF)/build
BPF_ARCH := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')

ebpf:
	@if command -v clang >/dev/null && command -v bpftool >/dev/null \
	    && test -r /sys/kernel/btf/vmlinux && test -f /usr/include/bpf/libbpf.h; then \
	  $(MAKE) --no-print-directory $(EBPF_BUILD)/ursprung-ebpf; \
	else echo "warning: clang, bpftool, libbpf-dev or /sys/kernel/btf/vmlinux missing: the eBPF loader is not built (bpftrace is used)"; fi

$(EBPF_BUILD)/vmlinux.h:
	mkdir -p $(EBPF_BUILD)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(EBPF_BUILD)/ursprung.skel.h: $(EBPF)/ursprung.bpf.c $(EBPF)/ursprung_ebpf.h $(EBPF_BUILD)/vmlinux.h
	clang -g -O2 -Wall -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -I$(EBPF_BUILD) -I$(EBPF) \
	  -c $(EBPF)/ursprung.bpf.c -o $(EBPF_BUILD)/ursprung.bpf.o
	bpftool gen skeleton $(EBPF_BUILD)/ursprung.bpf.o name ursprung_bpf > $@.tmp && mv $@.tmp $@

$(EBPF_BUILD)/ursprung-ebpf: $(EBPF)/loader.c $(EBPF)/ursprung_ebpf.h $(EBPF_BUILD)/ursprung.skel.h
	gcc -O2 -Wall -Wextra -I$(EBPF_BUILD) -I$(EBPF) $(EBPF)/loader.c -o $@ -lbpf

node: tools/cypher-lint/node_modules/.installed

tools/cypher-lint/node_modules/.installed: tools/cypher-lint/package.json tools/cypher-lint/package-lock.json
	npm ci --prefix tools/cypher-lint --no-audit --no-fund --loglevel=error
	touch $@

# A real Neo4j 5 for the tests (tools/neo4j): the community database with Bolt on loopback,
# jars from Maven Central; ~1 min from an empty ~/.m2, rebuilt only when its sources change.
NEO4J_SOURCES := tools/neo4j/pom.xml $(wildcard tools/neo4j/src/main/java/org/ursprung/neo4j/*.java)

neo4j: tools/neo4j/target/.built

tools/neo4j/target/.built: $(NEO4J_SOURCES)
	mvn -q -B -f tools/neo4j/pom.xml package
	touch $@

# GraphiQL and React for `ursprung serve` (served from here; nothing from a CDN at run time).
graphiql: tools/graphiql/node_modules/.installed

tools/graphiql/node_modules/.installed: tools/graphiql/package.json tools/graphiql/package-lock.json
	npm ci --prefix tools/graphiql --no-audit --no-fund --loglevel=error
	touch $@

# The GraphQL schema as checked in (tests/api/test_schema.py fails when it is out of date).
schema: venv
	$(PY) -c "from ursprung_graph.api.schema import build_schema; print(build_schema().as_str())" > docs/schema.graphql

# The main job on the embedded defaults: a real audit log of a pipeline imported and its
# output's lineage; then an example ML pipeline run twice under `ursprung run` and compared.
demo: setup
	@rm -rf $(DEMO_HOME)
	@printf '\n\033[1m== a real audit log of a pipeline: import, then where its output came from\033[0m\n'
	URSPRUNG_HOME=$(DEMO_HOME) $(VENV)/bin/ursprung import --host demo --no-progress $(DEMO_LOG)
	URSPRUNG_HOME=$(DEMO_HOME) $(VENV)/bin/ursprung lineage --host demo $(DEMO_OUTPUT)
	URSPRUNG_HOME=$(DEMO_HOME) sh examples/demo.sh $(DEMO_HOME)/runs
	URSPRUNG_HOME=$(DEMO_HOME) $(VENV)/bin/ursprung db stop

# ruff (with RUF100: no noqa for a rule that is not enabled) and mypy (strict on the core:
# schema, store, query, pipeline; see pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check ursprung_graph tests bench
	$(VENV)/bin/mypy

test: setup lint
	$(VENV)/bin/pytest -q

bench: setup
	$(PY) bench/bench_parse.py
	$(PY) bench/bench_cluster.py
	$(PY) bench/bench_trace.py
	$(PY) bench/bench_winnower.py
	$(PY) bench/bench_backends.py
	$(PY) bench/bench_api.py
	$(PY) bench/bench_gui.py

clean:
	rm -rf $(VENV) .home tools/cypher-lint/node_modules tools/neo4j/target $(EBPF_BUILD)
