"""``python -m agentadapter.cli ...``: the ``agentadapter`` command, for when the script is not on PATH.

Tests, benchmarks and ``agentadapter serve`` (its migration step) start the command this way, with
the interpreter that runs them.
"""

from agentadapter.cli import main

main()
