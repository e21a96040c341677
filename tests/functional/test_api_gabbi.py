"""Run the gabbi YAML files in gabbits/ against the API (in process).

Works under stestr/unittest (``load_tests``) and pytest
(``pytest_generate_tests`` + gabbi's ``test_pytest``); each YAML file is one
suite with its own fixture (fresh database), run in order.
"""

import os

from gabbi import driver
# pytest collects this function; each YAML test becomes one parameter.
from gabbi.driver import test_pytest  # noqa: F401

from tests.functional.fixtures import gabbi_fixture

TESTS_DIR = os.path.join(os.path.dirname(__file__), 'gabbits')


def load_tests(loader, tests, pattern):
    return driver.build_tests(
        TESTS_DIR, loader, intercept=gabbi_fixture.setup_app,
        fixture_module=gabbi_fixture, test_loader_name=__name__)


def pytest_generate_tests(metafunc):
    driver.py_test_generator(
        TESTS_DIR, intercept=gabbi_fixture.setup_app,
        fixture_module=gabbi_fixture, test_loader_name=__name__,
        metafunc=metafunc)
