"""The legacy runner installed for one test, and uninstalled after it."""

import pytest

from fcn8_lasagne import legacy


@pytest.fixture
def installed():
    legacy.install()
    yield legacy
    legacy.uninstall()
    legacy.set_device("cpu")
