"""The pipeline's phases as plain functions over the state file: preflight, secrets, servers, readiness,
migrations, dependencies, tests, teardown. The Ansible modules (plugins/modules) are thin shells over these."""
