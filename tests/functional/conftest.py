import pytest
from saltfactories.utils.functional import Loaders
from support.saltconfig import checkout_config


@pytest.fixture(scope="module")
def minion_id():
    return "pve-roz1"


@pytest.fixture(scope="module")
def loaders(salt_factories, minion_id):
    factory = salt_factories.salt_minion_daemon(
        minion_id, overrides=checkout_config("minion", id=minion_id)
    )
    return Loaders(factory.config.copy())


@pytest.fixture(autouse=True)
def reset_loaders_state(loaders):
    try:
        yield
    finally:
        loaders.reset_state()
