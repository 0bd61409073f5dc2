"""Which database, storage, settings and executor the service code is talking to.

A :class:`Service` is built once per host (the Flask app, a Celery worker
process, a test) and made *active*: explicitly with :meth:`Service.activate`, or
through a resolver the host registers (the web app resolves to its own service
inside an app context). Service code calls :func:`current` and never asks which
framework is around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import scoped_session, sessionmaker

from grader.service.database import database_url, make_engine
from grader.settings import Settings, get_settings

if TYPE_CHECKING:
    from grader.service.executors import Executor
    from grader.service.storage import S3Storage, Storage

_active: ContextVar[Service | None] = ContextVar("grader_service", default=None)
_resolvers: list[Callable[[], Service | None]] = []


def default_instance_dir() -> Path:
    """``GRADER_INSTANCE_DIR``, else ``./instance``: where SQLite, the embedded broker
    and the secret key live, for the web app and workers alike."""
    return Path(get_settings().instance_dir or Path.cwd() / "instance").resolve()


class Service:
    """One database (engine and thread-local sessions), one file store, one executor."""

    def __init__(
        self,
        *,
        instance_path: str | Path,
        url: str | None = None,
        settings: Settings | None = None,
        storage_config: Mapping[str, Any] | None = None,
        password_method: str = "scrypt",
    ) -> None:
        self.instance_path = Path(instance_path)
        self.url = database_url(self.instance_path, url)
        self.settings = settings or get_settings()
        self.storage_config = dict(storage_config or {})
        self.storage_config.setdefault(
            "GRADER_SUBMISSIONS_DIR",
            str(self.settings.submissions_dir or Path.cwd() / "submissions"),
        )
        self.password_method = password_method
        self.engine = make_engine(self.url)
        self.session = scoped_session(sessionmaker(bind=self.engine, expire_on_commit=True))
        self.executor: Executor | None = None
        self._storage: Storage | S3Storage | None = None

    def storage(self) -> Storage | S3Storage:
        if self._storage is None:
            from grader.service.storage import open_storage

            self._storage = open_storage(self.storage_config, self.settings)
        return self._storage

    @contextmanager
    def activate(self) -> Iterator[Service]:
        """Make this the service of the current thread/context; the session is closed
        after. Re-entrant: inside an active scope of the same service it changes nothing."""
        if _resolve() is self:
            yield self
            return
        token = _active.set(self)
        try:
            yield self
        finally:
            self.session.remove()
            _active.reset(token)

    def close(self) -> None:
        self.session.remove()
        self.engine.dispose()


def register_resolver(resolver: Callable[[], Service | None]) -> None:
    """A host's way to say which service is active (e.g. the current Flask app's)."""
    if resolver not in _resolvers:
        _resolvers.append(resolver)


def _resolve() -> Service | None:
    service = _active.get()
    if service is not None:
        return service
    for resolver in _resolvers:
        service = resolver()
        if service is not None:
            return service
    return None


def current() -> Service:
    service = _resolve()
    if service is not None:
        return service
    raise RuntimeError("no grader service is active (no app context and no worker service)")


def settings() -> Settings:
    return current().settings


def storage() -> Storage | S3Storage:
    return current().storage()
