# The two commands a user needs: `make demo` runs the loop, `make test` runs every check.
.PHONY: setup demo test lint typecheck pytest lock

setup:
	@bash deploy/bootstrap.sh

demo: setup
	.venv/bin/driftloop demo

lint: setup
	.venv/bin/ruff check driftloop shared services tests
	.venv/bin/ruff format --check driftloop shared services tests
	.venv/bin/lint-imports --no-logo

typecheck: setup
	.venv/bin/mypy driftloop shared services

pytest: setup
	bash deploy/run-pytest.sh

test: lint typecheck pytest

lock:
	.venv/bin/uv pip compile pyproject.toml --extra local --extra dev -o requirements.lock --python-version 3.11 -q
	.venv/bin/uv pip compile pyproject.toml -c requirements.lock -o deploy/requirements-services.lock --python-version 3.11 -q
