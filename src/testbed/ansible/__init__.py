"""Driving the playbooks: ansible-runner with testbed's settings and options, extra variables as data, the
modules' shared shell and in-process action, the collections a run needs, and the wrapper's own cleanup."""
