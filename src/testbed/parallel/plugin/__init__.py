"""The pytest plugin testbed loads into a service's tests (`-p testbed_workers`, this folder on PYTHONPATH).
It imports nothing of testbed: the service's environment has its own packages."""
