from . import test_client
from . import test_tracking_flow
from . import test_reliability
