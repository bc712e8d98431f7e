"""The process's entry to every tenant: registry, keys and center applications.

``Tenants`` owns the one connection pool, the keyring and a bounded LRU of
:class:`CenterApp` objects. Opening a center costs well under a millisecond
(no query: the log group's tables are ensured once per process), so the
cache bounds memory, not latency; connections never grow with tenants.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from pathlib import Path

from domain import WorkingCalendar
from tenants import persistence
from tenants.center import CenterApp
from tenants.keys import Keyring
from tenants.persistence import SharedDatastore
from tenants.registry import ImportReport, Registry, UnknownTenant

DEFAULT_CACHE_SIZE = 256


class Tenants:
    def __init__(self, database_url: str, master_key: bytes, *,
                 pool_size: int = persistence.DEFAULT_POOL_SIZE,
                 cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self.env = {
            "PERSISTENCE_MODULE": persistence.__name__,
            persistence.DATABASE_URL: database_url,
            persistence.POOL_SIZE: str(pool_size),
        }
        self.datastore = SharedDatastore.for_url(database_url, pool_size)
        self.keyring = Keyring(self.datastore, master_key)
        self.registry = Registry(self.env)
        self._apps: OrderedDict[str, CenterApp] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def calendar(self) -> WorkingCalendar:
        return self.registry.calendar()

    def is_active(self, code: str) -> bool:
        """Registered and not retired."""
        try:
            return not self.registry.get(code).retired
        except UnknownTenant:
            return False

    def center(self, code: str) -> CenterApp:
        """The application of a registered center (cached, bounded)."""
        with self._lock:
            app = self._apps.get(code)
            if app is not None:
                self._apps.move_to_end(code)
                return app
        self.registry.get(code)  # raises UnknownTenant
        app = CenterApp(code, {**self.env, persistence.TENANT: code}, self.keyring,
                        self.calendar, self.is_active)
        with self._lock:
            self._apps[code] = app
            while len(self._apps) > self._cache_size:
                self._apps.popitem(last=False)
        return app

    def import_divisions(self, directory: Path, scope: str | None, by: str,
                         at: datetime) -> ImportReport:
        report = self.registry.import_divisions(directory, scope, by, at)
        for city in report.cities:  # one-time DDL per city, never per tenant
            self.center(city)
        return report

    def shred_key(self, code: str, reason: str, by: str, at: datetime) -> None:
        """Destroy a center's data key; safe to repeat after a crash half-way."""
        if not self.registry.get(code).key_shredded:
            self.registry.record_key_shredded(code, reason, by, at)
        self.keyring.shred(code)

    def close(self) -> None:
        with self._lock:
            self._apps.clear()
        self.datastore.close()


__all__ = ["Tenants", "UnknownTenant"]
