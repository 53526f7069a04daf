"""Pure algorithm modules of the fog engine (ALGORITHMS.md sections 1-4).

Everything in this package is deterministic and free of I/O, logging set-up
and third-party imports, so the fog service, the cloud trainer and the bench
can all call the same code and tests can pin every number in the spec.
"""
