"""A service's testbed.yml and the catalogue: loading, validation, the servers it uses, its workers, the
tests' environment templates, and the checks made before anything starts."""
