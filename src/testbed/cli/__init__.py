"""The `testbed` command: arguments, one module per group of commands, and `main`."""
