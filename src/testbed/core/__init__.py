"""Leaves every other package stands on: errors and exit codes, signals, paths, processes, the host, files,
ports, templates, redaction, JUnit, logs, the supervisor, installers. Nothing here imports the rest of testbed."""
