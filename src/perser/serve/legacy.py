"""Migrating the profile folders of perser 0.1's service into the database.

perser 0.1 kept one folder per listener (``profiles/<percent-encoded id>/profile.json``
and ``profile.safetensors``) beside a ``store.json`` naming the model by a digest of every
file in its folder. Those folders hold profiles only, not the ratings they were made
from, so a migrated listener keeps their profile for *that* model and no other: for
another model their profile is ``failed`` (no ratings to re-enroll from), and they need
to rate clips again there. ``perser serve-migrate OLD_FOLDER MODEL --store DB`` does it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import unquote

from perser.errors import ConfigError
from perser.methods.base import Profile


def _old_fingerprint(model_dir: Path) -> str:
    """perser 0.1's digest of a model folder (every file's name and bytes)."""
    from perser.features.store import file_digest

    h = hashlib.sha256()
    for f in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(model_dir)).encode("utf-8") + b"\0")
        h.update(file_digest(f).encode("ascii"))
    return h.hexdigest()[:24]


def migrate_folder_store(old: str | Path, model_dir: str | Path, store, check_model: bool = True) -> dict:
    """Copy every profile of a perser 0.1 profile folder into the database ``store``.

    Parameters
    ----------
    old:
        The old ``--profiles`` folder (with ``store.json`` and ``profiles/``).
    model_dir:
        The model folder those profiles were made with.
    store:
        A :class:`~perser.serve.db.Database` or its ``--store`` value.
    check_model:
        Refuse when ``store.json``'s fingerprint is not this model folder's (a file added
        to the folder since changes it; pass False once you are sure it is the same model).

    Returns ``{"migrated": n, "skipped": {listener: reason}}``; listeners already in the
    database are skipped, never overwritten.
    """
    from perser.methods import load_model
    from perser.serve import db as dbm
    from perser.serve.service import profile_row

    old, model_dir = Path(old), Path(model_dir)
    meta = old / "store.json"
    if not meta.is_file():
        raise ConfigError(f"{old} is not a perser 0.1 profile folder (no store.json)")
    info = json.loads(meta.read_text(encoding="utf-8"))
    if check_model and info.get("fingerprint") != _old_fingerprint(model_dir):
        raise ConfigError(f"{old} was made for another model folder than {model_dir} (fingerprint "
                          f"{info.get('fingerprint')}); pass --no-check if only files beside the weights changed")
    database = store if isinstance(store, dbm.Database) else dbm.Database(store)
    model = load_model(model_dir)
    model_id = database.register_model(dbm.model_identity(model_dir), model.name, model.space_.to_dict(),
                                       dbm.feature_key(getattr(model, "feature_spec", None), getattr(model, "input_shape_", ())),
                                       getattr(model, "feature_spec", None), str(model_dir.resolve()))
    done, skipped = 0, {}
    for d in sorted((old / "profiles").iterdir()) if (old / "profiles").is_dir() else []:
        if d.name.startswith(".") or not (d / "profile.json").is_file():
            continue
        name = unquote(d.name)
        try:
            dbm.check_listener_id(name)
            if database.listener(name) is not None:
                skipped[name] = "already in the database"
                continue
            p = Profile.load(d)
            database.write_ratings(name, [], False, None, {model_id: profile_row(p, 0)})
            done += 1
        except Exception as e:  # one bad folder does not stop the others; each is reported
            skipped[name] = str(e)
    return {"migrated": done, "skipped": skipped}
