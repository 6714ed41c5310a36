"""Parallel tests: each pytest-xdist worker's share of the servers, the dev loop's reset and its gate, a
suite's split into shards, and the pytest plugin testbed loads into the service's tests."""
