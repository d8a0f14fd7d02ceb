from . import test_client
from . import test_tracking_flow
from . import test_reliability
from . import test_concurrency
from . import test_tour
