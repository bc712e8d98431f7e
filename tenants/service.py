"""The process's entry to every tenant: registry, keys and center applications.

``Tenants`` owns the one connection pool, the keyring and a bounded LRU of
:class:`CenterApp` objects. Opening a center costs well under a millisecond
(no query: the log group's tables are ensured once per process), so the
cache bounds memory, not latency; connections never grow with tenants.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

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
                 cache_size: int = DEFAULT_CACHE_SIZE,
                 placement: Mapping[str, str] | None = None) -> None:
        """``placement`` puts some cities' log groups (and their read models) on
        other servers; the registry, the keys and every other city stay on
        ``database_url`` (see docs/scaling.md)."""
        self.placement = dict(placement or {})
        persistence.parse_placement(json.dumps(self.placement))  # validates
        self.env = {
            "PERSISTENCE_MODULE": persistence.__name__,
            persistence.DATABASE_URL: database_url,
            persistence.POOL_SIZE: str(pool_size),
            persistence.PLACEMENT: json.dumps(self.placement),
        }
        self._pool_size = pool_size
        self.datastore = SharedDatastore.for_url(database_url, pool_size)
        self.keyring = Keyring(self.datastore, master_key)
        self.registry = Registry(self.env)
        self._apps: OrderedDict[str, CenterApp] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, database_url: str, master_key: bytes, **options: Any) -> Tenants:
        """The product's entry as a process is configured: ``ZONGZHI_PLACEMENT``
        (JSON, city -> database URL) places those cities' log groups;
        ``ZONGZHI_POOL_SIZE`` sizes each server's pool (see docs/postgres.md)."""
        placement = persistence.parse_placement(os.environ.get(persistence.PLACEMENT))
        options.setdefault("pool_size",
                           persistence.parse_pool_size(os.environ.get(persistence.POOL_SIZE)))
        return cls(database_url, master_key, placement=placement, **options)

    def datastore_for(self, city: str) -> SharedDatastore:
        """The pool of the server holding ``city``'s log group."""
        url = persistence.placed_url(self.datastore.url, self.placement, city)
        if url == self.datastore.url:
            return self.datastore
        return SharedDatastore.for_url(url, self._pool_size)

    def datastores(self) -> list[SharedDatastore]:
        """Every server this process stores on: the primary first."""
        return [self.datastore, *(self.datastore_for(c) for c in sorted(self.placement)
                                  if self.placement[c] != self.datastore.url)]

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
        for datastore in self.datastores():
            datastore.close()


__all__ = ["Tenants", "UnknownTenant"]
