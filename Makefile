# Convenience targets; each one creates .venv when it is missing.
.PHONY: venv demo test lint schema clean bench docs

venv:
	bash scripts/bootstrap.sh

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

lint: venv
	.venv/bin/ruff check .
	.venv/bin/mypy

# make bench BENCH_ARGS=--quick: a small version of every benchmark (see benchmarks/run_all.py)
bench: venv
	.venv/bin/python benchmarks/run_all.py $(BENCH_ARGS)

# The documentation site (docs/, mkdocs.yml) into site/; `.venv/bin/mkdocs serve` previews it live.
docs: venv
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir site

schema: venv
	.venv/bin/mlops schema -o airflow_provider_mlops/schema/mlops.schema.json

clean:
	rm -rf .venv .venv-tools .demo build site *.egg-info
