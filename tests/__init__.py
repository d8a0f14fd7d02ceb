from . import test_client, test_concurrency, test_reliability, test_tracking_flow
