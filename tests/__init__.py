from . import test_client




