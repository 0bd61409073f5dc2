"""Exceptions that carry a verdict, so every layer can turn them into a report."""


class NotGradable(Exception):
    """The file was refused or could not be evaluated.

    This is a final verdict about the submission, not an infrastructure
    failure: retrying is pointless and the message is shown to the student,
    so it must be plain words.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SandboxUnavailable(RuntimeError):
    """No isolation could be set up on this machine; untrusted files must not run."""


class ConfigurationError(Exception):
    """The grader itself is misconfigured (bad spec, missing data): exit code 3."""


class TestSetMissing(ConfigurationError):
    """No CIFAR-10 test set here yet: evaluations wait for it rather than fail."""

    __test__ = False  # not a pytest test class, whatever its name
