# The two commands of the README: `make run` and `make test`. Both set up .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
SHARED := $(abspath ../shared)

# Ready ImageNet weights for offline machines; elsewhere Keras downloads them to ~/.keras.
ifneq ($(wildcard $(SHARED)/keras/models),)
export KERAS_HOME ?= $(SHARED)/keras
endif

.PHONY: run test install serving-venv clean

install: $(VENV)/.installed

# A web or prediction-worker machine's install, without TensorFlow; the tests run the app from it too.
serving-venv: .venv-serving/.installed

.venv-serving/.installed: requirements-serving.txt
	test -x .venv-serving/bin/python || $(PYTHON) -m venv .venv-serving
	.venv-serving/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-serving.txt
	touch $@

$(VENV)/.installed: requirements-serving.txt requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is needed (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Ctrl-C stops the web and both clusters within seconds and exits 0; a runner killed hard takes
# them with it (coffeeclassifier/runner.py). Metrics restart from zero with the processes.
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup
	rm -f $${PROMETHEUS_MULTIPROC_DIR:-var/prometheus}/*.db
	$(PY) -m coffeeclassifier.runner $(VENV)/bin/honcho start --port 8000

# pytest exits 5 when it collects nothing: say so, and fail (a suite that ran nothing proves nothing).
test: install serving-venv
	@$(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: check PYTEST_ARGS and tests/."; fi; \
	exit $$status

clean:
	rm -rf $(VENV) .venv-serving var staticfiles .pytest_cache
