"""The service layer: what the web pages, the API, the Celery workers and the CLI
share. Database models and sessions, file storage, spec versions, course policy,
submissions, the job lifecycle and the one job body.

It builds on the grading core (:mod:`grader.pipeline` and below) and imports
neither :mod:`grader.web` nor :mod:`grader.queue`; both of those build on it.
"""
