"""The job pipeline: Celery queues (``inspect``, ``evaluate``), sandboxed workers that
may run on other machines, GPU or not, and a watchdog so no job is lost or stuck.

The database is the record of truth (:mod:`grader.service.lifecycle`); Celery only
carries "look at submission N" messages, and any of them may be lost or duplicated
without harm. Importing this package imports neither Celery nor TensorFlow.
"""
