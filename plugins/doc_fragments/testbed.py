"""Documentation shared by every module of testbed.pipeline (`extends_documentation_fragment:
testbed.pipeline.testbed`, and `testbed.pipeline.testbed.run_id` for the option nearly all of them take).
ansible-doc merges it into each module's DOCUMENTATION; a module's own entry for an attribute or an option
adds to the fragment's and wins where both say the same thing."""

from __future__ import annotations


class ModuleDocFragment:
    # Every module: what it needs, how it runs, and what its attributes mean.
    DOCUMENTATION = r"""
options: {}
requirements:
  - The C(testbed) Python package, installed from its wheel or a checkout (C(pip install <wheel or folder>); the
    C(testbed) on PyPI is another project), in the Python that runs the module. Its wheel carries this
    collection. On a local connection that is the Python Ansible itself runs with; on any other host, the host's
    C(ansible_python_interpreter) (the role P(testbed.pipeline.runner_host#role) installs it there).
  - Python 3.11 or later.
attributes:
  action:
    description: Has a corresponding action plugin, which decides where the module's code runs.
    support: full
    details:
      - On a local connection, the action plugin runs the module's function inside Ansible's worker process.
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
    support: none
    details:
      - testbed's modules act on real servers and on the run's state file; in check mode Ansible skips them.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff
      mode.
    support: none
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - On a local connection (the playbook's host is the machine it runs on) the action plugin in C(plugins/action/)
    runs the module's own function, with the module's own argument spec, inside Ansible's worker process instead of
    starting a Python for it (about 0.02 s a task instead of 0.25 s). On any other host, and with C(become), check
    mode or C(async), it runs as a module the usual way. C(-e testbed_in_process=false) makes it run as a module on
    the local machine too.
  - A failure is one line in C(msg), with testbed's exit code in C(exit_code), the same line C(testbed run) prints
    and the code it exits with (the table is in testbed's documentation, Reference, Exit codes).
  - Every phase works from the run's state file (C($TMPDIR/testbed-<uid>/<run id>/state.json)), which
    M(testbed.pipeline.testbed_preflight) creates; the other modules take the run by its O(run_id).
"""

    # The run a module acts on: nearly every module takes it, in the same words.
    RUN_ID = r"""
options:
  run_id:
    description:
      - The run to act on, by the C(run_id) M(testbed.pipeline.testbed_preflight) returned.
      - Its state file must be on the host the module runs on, owned by the user it runs as; a run that is not
        fails in one line naming C(testbed status), with exit code 10.
    type: str
    required: true
"""
