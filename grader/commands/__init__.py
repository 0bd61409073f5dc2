"""The ``grader`` commands, one module per verb; :mod:`grader.cli` composes them.

This is the top layer: it may use the web app, the queue and the service layer,
and nothing below imports it. Modules import only click at load time (heavy
imports happen inside the commands), so ``grader --help`` and ``grader check``
stay fast.
"""
