"""In-memory fakes of the federation's ports, and the one place the core is assembled over them.

The fakes (``FakeWarehouse``, ``FakeSales``, ``FakeAccounting``, ``FakeCache``) are real classes holding the
core's records and answering the ports' calls as the connectors do; they are for testing the federation's
rules without servers. Build the core with ``federation_over`` and the request with ``request_as``, so a
change to how the core is constructed is made here once.
"""

from __future__ import annotations

from federation.context import RequestContext
from federation.gateway import Gateway, ReadThrough
from federation.policy import NullObserver, PolicyConfig, SourcePolicy, Timeouts, make_breaker
from tests.fakes.accounting import FakeAccounting
from tests.fakes.cache import FakeCache, ManualClock
from tests.fakes.sales import FakeSales
from tests.fakes.warehouse import FakeWarehouse

__all__ = ["FakeAccounting", "FakeCache", "FakeSales", "FakeWarehouse", "ManualClock", "federation_over",
           "request_as"]


def federation_over(warehouse: FakeWarehouse | None = None, sales: FakeSales | None = None,
                    accounting: FakeAccounting | None = None, cache: ReadThrough | None = None, *,
                    timeout: float = 1.0, attempts: int = 2, fail_max: int = 5, reset: float = 10.0,
                    concurrency: int = 8, bulkhead_wait: float = 0.5) -> Gateway:
    """A Gateway over the given fakes (empty ones for those not given), each source under its own policy
    with a real breaker, as ``api/app.py`` builds them; ``cache`` None reads every call from the source."""
    connectors = {"warehouse": warehouse or FakeWarehouse(), "sales": sales or FakeSales(),
                  "accounting": accounting or FakeAccounting()}
    config = PolicyConfig(timeouts=Timeouts(connect=timeout, attempt=timeout, deadline=5.0), concurrency=concurrency,
                          bulkhead_wait=bulkhead_wait, attempts=attempts)
    observer = NullObserver()
    policies = {name: SourcePolicy(name, config, make_breaker(name, fail_max, reset, observer), observer)
                for name in connectors}
    return Gateway(connectors, policies, cache=cache)


def request_as(role: str, budget: float = 5.0) -> RequestContext:
    """A request of ``role`` (reader, finance or admin) with ``budget`` seconds to answer."""
    return RequestContext.start(role, budget)
