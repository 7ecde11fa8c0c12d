# Convenience targets; each one creates .venv when it is missing.
.PHONY: venv demo test lint schema clean bench

venv:
	bash scripts/bootstrap.sh

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

lint: venv
	.venv/bin/ruff check .
	.venv/bin/mypy

bench: venv
	.venv/bin/python benchmarks/run_all.py

schema: venv
	.venv/bin/mlops schema -o airflow_provider_mlops/schema/mlops.schema.json

clean:
	rm -rf .venv .venv-tools .demo build *.egg-info
