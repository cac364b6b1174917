"""The service's database: models, listeners, their ratings, profiles per model, and keys.

One schema for SQLite (one file, the default) and PostgreSQL (several workers or hosts),
written with SQLAlchemy Core and migrated with Alembic (``perser/serve/migrations``).

Tables
------
``models``
    Every model ever served: its identity (:func:`model_identity`, a digest of the
    weights and config), method, label space and *feature key* (which features its
    input is), and a lease that lets one worker at a time re-enroll listeners for it.
``listeners``
    A listener's id (any Unicode text up to :data:`LISTENER_ID_MAX_BYTES` bytes of UTF-8,
    stored as data) and a ``revision`` that grows with every change of their ratings.
``ratings``
    One row per (listener, clip id): the label as sent (JSON: a class, a list of
    classes, or values per dimension), the SHA-256 of the clip's audio when audio was
    sent, and when. ``rating_features`` holds the clip's features per feature key.
``profiles``
    One row per (listener, model): the profile (``ready``) or why it could not be made
    (``failed``), and the listener ``revision`` it was computed from. A profile older
    than the listener's revision is *stale*: still served, recomputed in the background.
``audio``
    Uploaded audio by SHA-256, kept only when the service runs with ``--keep-audio``
    (then a model with another feature extractor can re-enroll listeners from it);
    removed with the last rating that refers to it.
``api_keys``
    Keys by name: a scope (``admin`` or ``listener:<id>``) and the SHA-256 of the key.

Writes are one transaction each. SQLite runs in WAL mode with ``synchronous=FULL``
(an acknowledged write survives a crash of the process and of the machine) and takes
the write lock at ``BEGIN IMMEDIATE``, so writers queue (``busy_timeout``) instead of
failing; PostgreSQL locks the listener's row (``SELECT ... FOR UPDATE``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
from sqlalchemy import (
    JSON, Column, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table, Text,
    UniqueConstraint, and_, case, create_engine, event, func, or_, select,
)
from sqlalchemy.engine import Connection, Engine

from perser.errors import ConfigError, PerserError

#: the longest listener id, in bytes of UTF-8
LISTENER_ID_MAX_BYTES = 256

metadata = MetaData()

models = Table(
    "models", metadata,
    Column("id", Integer, primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("method", String(64), nullable=False),
    Column("space", JSON, nullable=False),
    Column("feature_key", String(64), nullable=False),
    Column("feature_spec", JSON),
    Column("path", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", Float),
)

listeners = Table(
    "listeners", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("revision", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

ratings = Table(
    "ratings", metadata,
    Column("id", Integer, primary_key=True),
    Column("listener_id", Integer, ForeignKey("listeners.id", ondelete="CASCADE"), nullable=False),
    Column("clip_id", Text, nullable=False),
    Column("label", JSON, nullable=False),
    Column("audio_digest", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("listener_id", "clip_id", name="uq_ratings_listener_clip"),
)

rating_features = Table(
    "rating_features", metadata,
    Column("rating_id", Integer, ForeignKey("ratings.id", ondelete="CASCADE"), primary_key=True),
    Column("feature_key", String(64), primary_key=True),
    Column("shape", JSON, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

profiles = Table(
    "profiles", metadata,
    Column("listener_id", Integer, ForeignKey("listeners.id", ondelete="CASCADE"), primary_key=True),
    Column("model_id", Integer, ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("revision", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("k", Integer, nullable=False),
    Column("error", Text),
    Column("data", JSON),
    Column("tensors", LargeBinary),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_profiles_model", "model_id", "status"),
)

audio = Table(
    "audio", metadata,
    Column("digest", String(64), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("scope", Text, nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)


class Conflict(PerserError):
    """The listener changed between reading their ratings and writing (retry)."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(t: Optional[dt.datetime]) -> Optional[str]:
    """A stored time as ISO 8601 UTC (SQLite gives naive datetimes: they are UTC)."""
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).isoformat()


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def model_identity(model_dir: str | Path) -> str:
    """A model's identity: SHA-256 of its config (parsed JSON, keys sorted) and weights file.

    Only ``config.json`` and ``model.safetensors`` count: a README or a checkpoint
    folder dropped beside them does not make another model; retrained weights do.
    """
    from perser.features.store import file_digest

    root = Path(model_dir)
    cfg, weights = root / "config.json", root / "model.safetensors"
    for f in (cfg, weights):
        if not f.is_file():
            raise ConfigError(f"{root} is not a perser model folder (no {f.name})")
    h = hashlib.sha256()
    h.update(canonical_json(json.loads(cfg.read_text(encoding="utf-8"))).encode("utf-8") + b"\0")
    h.update(file_digest(weights).encode("ascii"))
    return h.hexdigest()


def feature_key(feature_spec: Optional[dict], input_shape) -> str:
    """What a model's input is: its feature spec and settings and the per-clip shape (hex digest).

    Two models with the same key take the same stored features; a rating stored with
    one key cannot be used by a model with another.
    """
    spec = feature_spec or {}
    blob = canonical_json({"spec": spec.get("spec"), "settings": spec.get("settings") or {},
                           "shape": [int(s) for s in input_shape]})
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def check_listener_id(listener: object) -> str:
    """The listener id, or a :class:`ConfigError` saying what is wrong (without echoing it whole)."""
    if not isinstance(listener, str) or not listener:
        raise ConfigError("listener id must be a non-empty string")
    n = len(listener.encode("utf-8"))
    if n > LISTENER_ID_MAX_BYTES:
        raise ConfigError(f"listener id is {n} bytes of UTF-8; at most {LISTENER_ID_MAX_BYTES}")
    if listener != listener.strip():
        raise ConfigError("listener id has leading or trailing white space")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in listener):
        raise ConfigError("listener id has control characters")
    return listener


def engine_url(store: str | Path) -> str:
    """SQLAlchemy URL of ``--store``: a ``postgresql://`` URL (psycopg 3), or a SQLite file path."""
    s = str(store)
    if s.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + s.split("://", 1)[1]
    if s.startswith(("postgresql+", "sqlite:")):
        return s
    if "://" in s:
        raise ConfigError(f"--store: unsupported database URL scheme {s.split('://')[0]!r}; "
                          "give a SQLite file path or a postgresql:// URL")
    p = Path(s)
    if p.is_dir():
        raise ConfigError(f"--store {p} is a folder; give a database file (e.g. {p}/perser.db). "
                          "An old profile folder is migrated with `perser serve-migrate`")
    p.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{p.resolve()}"


@dataclass
class StoredRating:
    clip_id: str
    label: Any
    audio_digest: Optional[str]
    created_at: Optional[str]
    rating_id: int = 0

    def public(self) -> dict:
        return {"clip_id": self.clip_id, "label": self.label, "audio_digest": self.audio_digest, "created_at": self.created_at}


class Database:
    """The service's database at ``store`` (a SQLite file path or a PostgreSQL URL).

    Construction connects and brings the schema to the newest Alembic revision
    (under an advisory lock on PostgreSQL, under SQLite's write lock on SQLite), so
    several workers may start at once.
    """

    def __init__(self, store: str | Path, upgrade: bool = True, pool_size: int = 5):
        self.url = engine_url(store)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: Engine = create_engine(self.url, connect_args={"timeout": 60, "check_same_thread": False})
            _sqlite_setup(self.engine)
        else:
            self.engine = create_engine(self.url, pool_size=pool_size, max_overflow=pool_size * 2, pool_pre_ping=True)
        if upgrade:
            self.upgrade()

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)})"

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``); committed when the block ends."""
        with self.engine.connect().execution_options(perser_write=True) as conn:
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (one consistent snapshot)."""
        with self.engine.connect() as conn:
            with conn.begin():
                yield conn

    def upgrade(self) -> None:
        """Migrate the schema to the newest revision (no-op when it is there)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        with self.write() as conn:
            if not self.is_sqlite:
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(424242)")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def _insert(self, table):
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        return insert(table)

    # --------------------------------------------------------------- models
    def register_model(self, digest: str, method: str, space: dict, fkey: str, feature_spec, path: str) -> int:
        """The model's row id (created on first sight; its folder path updated)."""
        with self.write() as conn:
            ins = self._insert(models).values(digest=digest, method=method, space=space, feature_key=fkey,
                                              feature_spec=feature_spec, path=path, created_at=now())
            conn.execute(ins.on_conflict_do_update(index_elements=["digest"], set_={"path": path}))
            return int(conn.execute(select(models.c.id).where(models.c.digest == digest)).scalar_one())

    def all_models(self) -> list[dict]:
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(select(models).order_by(models.c.id))]

    def take_lease(self, model_id: int, owner: str, seconds: float) -> bool:
        """Claim (or renew) the right to re-enroll listeners for a model; False if another worker holds it."""
        t = time.time()
        with self.write() as conn:
            r = conn.execute(models.update().where(
                and_(models.c.id == model_id,
                     or_(models.c.lease_owner.is_(None), models.c.lease_owner == owner, models.c.lease_until < t))
            ).values(lease_owner=owner, lease_until=t + seconds))
            return r.rowcount == 1

    def release_lease(self, model_id: int, owner: str) -> None:
        with self.write() as conn:
            conn.execute(models.update().where(and_(models.c.id == model_id, models.c.lease_owner == owner))
                         .values(lease_owner=None, lease_until=None))

    def _first(self, q, conn: Optional[Connection] = None) -> Optional[dict]:
        """The first row of query ``q`` as a dict (None without one), in ``conn``'s transaction
        when given, else in a read transaction of its own."""
        if conn is not None:
            r = conn.execute(q).first()
        else:
            with self.read() as c:
                r = c.execute(q).first()
        return None if r is None else dict(r._mapping)

    # ------------------------------------------------------------ listeners
    def listener(self, name: str, conn: Optional[Connection] = None) -> Optional[dict]:
        """``{"id", "name", "revision", "created_at", "updated_at"}`` or None."""
        q = select(listeners).where(listeners.c.name == name)
        return self._first(q, conn)

    def count_listeners(self) -> int:
        with self.read() as conn:
            return int(conn.execute(select(func.count()).select_from(listeners)).scalar_one())

    def list_listeners(self, after: Optional[str], limit: int) -> list[dict]:
        """A page of listeners ordered by id (keyset pagination: those after ``after``)."""
        q = select(listeners.c.name, listeners.c.revision, listeners.c.updated_at).order_by(listeners.c.name).limit(limit)
        if after is not None:
            q = q.where(listeners.c.name > after)
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def ratings_of(self, listener_id: int, fkey: Optional[str], conn: Optional[Connection] = None):
        """A listener's ratings, and their features under ``fkey`` (None where missing).

        Returns ``(list[StoredRating], list[np.ndarray | None])`` ordered by clip id.
        """
        rf = rating_features.alias("rf")
        cols = [ratings.c.clip_id, ratings.c.label, ratings.c.audio_digest, ratings.c.created_at, ratings.c.id]
        if fkey is not None:
            q = (select(*cols, rf.c.shape, rf.c.data)
                 .select_from(ratings.outerjoin(rf, and_(rf.c.rating_id == ratings.c.id, rf.c.feature_key == fkey))))
        else:
            q = select(*cols)
        q = q.where(ratings.c.listener_id == listener_id).order_by(ratings.c.clip_id)

        def run(c):
            return list(c.execute(q))

        if conn is not None:
            rows = run(conn)
        else:
            with self.read() as c:
                rows = run(c)
        out, feats = [], []
        for r in rows:
            out.append(StoredRating(r.clip_id, r.label, r.audio_digest, iso(r.created_at), int(r.id)))
            if fkey is not None and r.data is not None:
                feats.append(np.frombuffer(r.data, dtype=np.float32).reshape(r.shape))
            else:
                feats.append(None)
        return out, feats

    def write_ratings(self, name: str, new: list[dict], replace: bool, expected_revision: Optional[int],
                      profile_rows: dict[int, dict], audio_blobs: Optional[dict[str, bytes]] = None) -> tuple[int, int, int]:
        """Store ``new`` ratings of listener ``name`` and their profiles, in one transaction.

        ``new`` items: ``clip_id``, ``label``, ``audio_digest``, ``features`` (feature key ->
        ``float32`` array). A clip the listener rated before is replaced. With ``replace``
        the listener's other ratings are removed. ``expected_revision`` (None: the listener
        must not exist yet) guards against a concurrent write: :class:`Conflict` if it differs.
        ``profile_rows``: model id -> :func:`profile_row` values, stored at the new revision.
        ``audio_blobs``: audio digest -> bytes to keep (``--keep-audio``).

        Returns ``(listener id, new revision, number of replaced ratings)``.
        """
        t = now()
        with self.write() as conn:
            cur = conn.execute(select(listeners).where(listeners.c.name == name).with_for_update()).first()
            have = None if cur is None else int(cur.revision)
            if have != expected_revision:
                raise Conflict(f"listener changed while their profile was computed (revision {have}, expected {expected_revision})")
            if cur is None:
                lid = int(conn.execute(listeners.insert().values(name=name, revision=1, created_at=t, updated_at=t)
                                       .returning(listeners.c.id)).scalar_one())
                rev = 1
            else:
                lid, rev = int(cur.id), int(cur.revision) + 1
                conn.execute(listeners.update().where(listeners.c.id == lid).values(revision=rev, updated_at=t))
            clips = [r["clip_id"] for r in new]
            if replace:
                replaced = 0
                conn.execute(ratings.delete().where(ratings.c.listener_id == lid))
            else:
                replaced = int(conn.execute(select(func.count()).select_from(ratings).where(
                    and_(ratings.c.listener_id == lid, ratings.c.clip_id.in_(clips)))).scalar_one()) if clips else 0
                if replaced:
                    conn.execute(ratings.delete().where(and_(ratings.c.listener_id == lid, ratings.c.clip_id.in_(clips))))
            if new:
                ids = conn.execute(ratings.insert().returning(ratings.c.id, sort_by_parameter_order=True), [
                    {"listener_id": lid, "clip_id": r["clip_id"], "label": r["label"], "audio_digest": r.get("audio_digest"),
                     "created_at": t} for r in new]).scalars().all()
                feats = [{"rating_id": rid, "feature_key": k, "shape": list(x.shape),
                          "data": np.ascontiguousarray(x, dtype=np.float32).tobytes()}
                         for rid, r in zip(ids, new) for k, x in r["features"].items()]
                if feats:
                    conn.execute(rating_features.insert(), feats)
            for model_id, row in profile_rows.items():
                self._put_profile(conn, lid, model_id, rev, row)
            if audio_blobs:
                ins = self._insert(audio).values([{"digest": d, "data": b, "created_at": t} for d, b in audio_blobs.items()])
                conn.execute(ins.on_conflict_do_nothing(index_elements=["digest"]))
            if replace or replaced:
                self._drop_unreferenced_audio(conn)
            return lid, rev, replaced

    @staticmethod
    def _drop_unreferenced_audio(conn: Connection) -> None:
        used = select(ratings.c.audio_digest).where(ratings.c.audio_digest.is_not(None))
        conn.execute(audio.delete().where(audio.c.digest.not_in(used)))

    def audio_of(self, digests: list[str]) -> dict[str, bytes]:
        """Kept audio by digest (only what exists)."""
        if not digests:
            return {}
        with self.read() as conn:
            return {r.digest: bytes(r.data) for r in conn.execute(select(audio.c.digest, audio.c.data).where(audio.c.digest.in_(digests)))}

    def add_features(self, rows: list[dict]) -> None:
        """Features of stored ratings under a feature key (``rating_id``, ``feature_key``, ``x``); existing ones kept."""
        if not rows:
            return
        with self.write() as conn:
            ins = self._insert(rating_features).values([
                {"rating_id": r["rating_id"], "feature_key": r["feature_key"], "shape": list(r["x"].shape),
                 "data": np.ascontiguousarray(r["x"], dtype=np.float32).tobytes()} for r in rows])
            conn.execute(ins.on_conflict_do_nothing(index_elements=["rating_id", "feature_key"]))

    # ------------------------------------------------------------- profiles
    def _put_profile(self, conn: Connection, listener_id: int, model_id: int, revision: int, row: dict) -> None:
        values = {"listener_id": listener_id, "model_id": model_id, "revision": revision, "updated_at": now(), **row}
        ins = self._insert(profiles).values(**values)
        conn.execute(ins.on_conflict_do_update(index_elements=["listener_id", "model_id"],
                                               set_={k: v for k, v in values.items() if k not in ("listener_id", "model_id")}))

    def put_profile_if_current(self, listener_id: int, model_id: int, revision: int, row: dict) -> bool:
        """Store a profile computed from ``revision``, only if the listener is still at it."""
        with self.write() as conn:
            cur = conn.execute(select(listeners.c.revision).where(listeners.c.id == listener_id).with_for_update()).first()
            if cur is None or int(cur.revision) != revision:
                return False
            self._put_profile(conn, listener_id, model_id, revision, row)
            return True

    def profile(self, listener_id: int, model_id: int, conn: Optional[Connection] = None) -> Optional[dict]:
        q = select(profiles).where(and_(profiles.c.listener_id == listener_id, profiles.c.model_id == model_id))
        return self._first(q, conn)

    def profiles_of(self, listener_id: int) -> list[dict]:
        q = (select(profiles.c.model_id, profiles.c.revision, profiles.c.status, profiles.c.k, profiles.c.error,
                    profiles.c.data, profiles.c.updated_at, models.c.digest)
             .select_from(profiles.join(models, models.c.id == profiles.c.model_id))
             .where(profiles.c.listener_id == listener_id).order_by(profiles.c.model_id))
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def pending(self, model_id: int, limit: int, after_id: int = 0) -> list[dict]:
        """Listeners whose profile for the model is missing or older than their ratings."""
        p = profiles.alias("p")
        q = (select(listeners.c.id, listeners.c.name, listeners.c.revision)
             .select_from(listeners.outerjoin(p, and_(p.c.listener_id == listeners.c.id, p.c.model_id == model_id)))
             .where(and_(listeners.c.id > after_id, or_(p.c.listener_id.is_(None), p.c.revision < listeners.c.revision)))
             .order_by(listeners.c.id).limit(limit))
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def progress(self, model_id: int) -> dict:
        """Counts of listeners by the state of their profile for the model."""
        p = profiles.alias("p")
        with self.read() as conn:
            total = int(conn.execute(select(func.count()).select_from(listeners)).scalar_one())
            rows = conn.execute(
                select(p.c.status, func.count(), func.sum(case((p.c.revision < listeners.c.revision, 1), else_=0)))
                .select_from(p.join(listeners, listeners.c.id == p.c.listener_id))
                .where(p.c.model_id == model_id).group_by(p.c.status)).all()
        by = {s: (int(n), int(stale or 0)) for s, n, stale in rows}
        ready, stale_r = by.get("ready", (0, 0))
        failed, stale_f = by.get("failed", (0, 0))
        return {"listeners": total, "ready": ready - stale_r, "failed": failed - stale_f,
                "pending": total - ready - failed + stale_r + stale_f}

    def delete_listener(self, name: str) -> Optional[list[str]]:
        """Remove a listener with their ratings and profiles; their clips' audio digests, or None if unknown."""
        with self.write() as conn:
            cur = conn.execute(select(listeners.c.id).where(listeners.c.name == name).with_for_update()).first()
            if cur is None:
                return None
            digests = conn.execute(select(ratings.c.audio_digest).where(
                and_(ratings.c.listener_id == cur.id, ratings.c.audio_digest.is_not(None)))).scalars().all()
            conn.execute(profiles.delete().where(profiles.c.listener_id == cur.id))
            rids = select(ratings.c.id).where(ratings.c.listener_id == cur.id).scalar_subquery()
            conn.execute(rating_features.delete().where(rating_features.c.rating_id.in_(rids)))
            conn.execute(ratings.delete().where(ratings.c.listener_id == cur.id))
            conn.execute(listeners.delete().where(listeners.c.id == cur.id))
            self._drop_unreferenced_audio(conn)
            return list(digests)

    # ----------------------------------------------------------------- keys
    def add_key(self, name: str, scope: str, key_hash: str) -> None:
        with self.write() as conn:
            if conn.execute(select(api_keys.c.id).where(api_keys.c.name == name)).first() is not None:
                raise ConfigError(f"a key named {name!r} exists; revoke it first or choose another name")
            conn.execute(api_keys.insert().values(name=name, scope=scope, hash=key_hash, created_at=now()))

    def find_key(self, key_hash: str) -> Optional[dict]:
        with self.read() as conn:
            r = conn.execute(select(api_keys.c.name, api_keys.c.scope).where(
                and_(api_keys.c.hash == key_hash, api_keys.c.revoked_at.is_(None)))).first()
        return None if r is None else dict(r._mapping)

    def list_keys(self) -> list[dict]:
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(
                select(api_keys.c.name, api_keys.c.scope, api_keys.c.created_at, api_keys.c.revoked_at).order_by(api_keys.c.name))]

    def active_keys(self) -> int:
        with self.read() as conn:
            return int(conn.execute(select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))).scalar_one())

    def revoke_key(self, name: str) -> None:
        with self.write() as conn:
            r = conn.execute(api_keys.update().where(and_(api_keys.c.name == name, api_keys.c.revoked_at.is_(None)))
                             .values(revoked_at=now()))
            if r.rowcount != 1:
                raise ConfigError(f"no active key named {name!r}")


def _sqlite_setup(engine: Engine) -> None:
    """WAL, full sync, foreign keys, and ``BEGIN IMMEDIATE`` for write transactions."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # the driver issues no BEGIN of its own; ours below do
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=60000"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("perser_write") else "BEGIN")
