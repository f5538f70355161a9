"""distill: turn a reasoning teacher into small, strong students.

Stages (each a `distill <stage>` command): generate, filter, train, eval, push.
"""

__version__ = "0.1.0"
