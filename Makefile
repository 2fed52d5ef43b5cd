# The developer verbs. `make run` and `make test` work on a fresh machine: the first use creates
# .venv with Python 3.12 (the functions' runtime) and installs requirements-dev.lock.
VENV       := .venv
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
API_PORT   ?= 3000
MOTO_PORT  ?= 5000
PARAMS     ?=
FN         ?= HealthFunction
EVENT      ?= events/health/get.json
ENV        ?= dev
SAM_FLAGS  ?=
export SAM_CLI_TELEMETRY = 0
export AWS_DEFAULT_REGION ?= us-east-1

.PHONY: run test unit lint format build invoke fire deploy preflight clean bench fuzz

# requirements-dev.lock pins every package with its hashes (scripts/lock.py writes it from
# requirements-dev.txt); pip refuses anything else. The lock is complete, so pip installs it as it
# is (--no-deps, as the layers do) and pip check proves nothing is missing: resolving it again
# fails with the pip that Python 3.12's venv brings (23.2), which rejects aws-sam-cli's
# `boto3[crt]` as unpinned in --require-hashes mode although boto3 and awscrt are both pinned.
$(STAMP): requirements-dev.lock
	@test -x $(PY) || "$$(scripts/find-python)" -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r requirements-dev.lock
	$(PY) -m pip check --disable-pip-version-check
	@touch $@

run: $(STAMP) ## start the local stack: API on :3000, moto on :5000
	$(PY) -m devstack --parameter-overrides "PublicBaseUrl=http://127.0.0.1:$(API_PORT) $(PARAMS)" \
		start --api-port $(API_PORT) --moto-port $(MOTO_PORT)

test: lint unit ## lint, then every test (unit, integration, end-to-end)

# Every test runs with IAM enforced; the run's usage records then prove each policy is neither
# narrower nor wider than its code (devstack/iam_coverage.py). The tests run on TEST_WORKERS
# pytest-xdist workers, a whole file at a time on one worker (its module fixtures, such as a
# file's own stack, start once); each worker starts its own session stack. TEST_WORKERS=0 runs
# them in this process.
TEST_WORKERS ?= 2
unit: $(STAMP)
	rm -rf .iam-usage
	DEVSTACK_IAM_USAGE="$(CURDIR)/.iam-usage" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile
	$(PY) -m devstack.iam_coverage .iam-usage

lint: $(STAMP) ## ruff, mypy, sam validate --lint, cfn-lint with every rule, checkov, the workflow's schema
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/sam validate --lint --template template.yaml
	@# Every rule, informational (I...) and experimental ones included; the exceptions are in the
	@# template's Metadata, each with its reason.
	$(VENV)/bin/cfn-lint --include-checks I --include-experimental -- template.yaml
	@# checkov's security policies; a check that does not apply is skipped in the template, inside the
	@# resource, as `# checkov:skip=ID:reason` (the pinned checkov reads no Metadata skips). --no-guide:
	@# no call to Bridgecrew's platform for its guideline links.
	$(VENV)/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --no-guide
	@# The pipeline against GitHub's workflow schema (actionlint ships as a downloaded binary, which this
	@# environment cannot fetch; check-jsonschema carries the schema in its wheel).
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

build: $(STAMP) ## sam build: the layer from its lock file (layers/common/Makefile), with bytecode compiled
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/sam build --template template.yaml
	@# Lambda's code directories are read-only, so source shipped without bytecode is compiled again
	@# on every cold start: bytecode for the functions and for the layer modules cold starts import.
	$(PY) scripts/bytecode.py .aws-sam/build

invoke: $(STAMP) ## make invoke FN=HealthFunction EVENT=events/health/get.json
	$(PY) -m devstack invoke $(FN) -e $(EVENT)

fire: $(STAMP) ## make fire FN=ScheduledSyncFunction: run a schedule now
	$(PY) -m devstack fire $(FN)

bench: $(STAMP) ## every performance figure, side by side in one run, into BENCHMARKS.md (about 25 minutes on two cores)
	$(PY) -m bench.run

bench-calls: $(STAMP) ## AWS API calls per POST /payouts (new, replay, rate-limited), printed as a table
	$(PY) -m bench.create_calls

# The preflight (deploy/preflight.py) runs before anything is built or sent: it lists every value and
# secret the environment still needs, with the command that creates it, and stops the deploy.
deploy: $(STAMP) ## make deploy ENV=dev|prod [PARAMS="Name=value ..."]: preflight, sam build, sam deploy
	$(PY) -m deploy preflight --env $(ENV) --params '$(PARAMS)'
	$(MAKE) build
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m deploy sam --env $(ENV) --params '$(PARAMS)' -- $(SAM_FLAGS)

preflight: $(STAMP) ## make preflight ENV=prod [PARAMS=...]: what a deploy still needs, without deploying
	$(PY) -m deploy preflight --env $(ENV) --params '$(PARAMS)'

clean:
	rm -rf .aws-sam .devstack .pytest_cache .mypy_cache .ruff_cache

.PHONY: bench-bank
bench-bank: $(STAMP) ## sync 10,000 bank transactions (page size 100) in-process on moto; rate, AWS calls per 1,000, re-sync writes
	$(PY) bench/bank_sync.py --transactions 10000 --page-size 100

.PHONY: demo chaos
demo: $(STAMP) ## the product's story on a fresh local stack, with a summary table; non-zero if an invariant failed
	$(PY) -m demo

fuzz: $(STAMP) ## Schemathesis over /openapi.json on a fresh local stack, signed in (ARGS="--max-examples 500")
	$(PY) -m fuzz $(ARGS)

chaos: $(STAMP) ## 500 payouts from 16 clients under provider faults, duplicate deliveries and crashes, then a webhook storm
	$(PY) -m chaos --payouts 500 --clients 16 --forgeries 200
