"""Station settings: a readable JSON file in the user's config folder.

QSettings keeps only window geometry and recent paths; everything an engineer
may want to read or copy between stations (data folder, history location,
image retention, PIN hash) lives here. Which folders "the config folder" and
"the data folder" are is :mod:`inspection_core.paths`' one answer. This module
has no Qt so the CLI and packaging scripts can use it too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from inspection_core.fileio import atomic_write_text
from inspection_core import paths

SETTINGS_FILE = "settings.json"
_PIN_ITERATIONS = 120_000


@dataclass
class StationSettings:
    """Settings of one inspection station. Empty path fields mean "the default
    below the data folder", so a copied file keeps working on another machine."""

    station_name: str = ""
    data_dir: str = ""
    history_path: str = ""
    #: a line's shared history server (postgresql://station1@server/line or service=line); empty: the SQLite
    #: file above. Never with a password: libpq reads it from ~/.pgpass, a service file or PGPASSWORD.
    history_server: str = ""
    #: the Line view's server, as an engineer's login (empty: history_server); no password either
    line_server: str = ""
    keep_images: bool = True
    image_dir: str = ""
    models_dir: str = ""
    default_source: str = ""
    default_bundle: str = ""
    trigger_key: str = "Space"
    start_role: str = "operator"
    pin_hash: str = ""
    pin_salt: str = ""
    #: when the history cannot be written: "spool" (keep inspecting, verdicts wait in a durable spool) or "stop"
    on_history_failure: str = "spool"

    # ---- file I/O --------------------------------------------------------------
    @staticmethod
    def default_path() -> Path:
        return paths.config_dir() / SETTINGS_FILE

    @classmethod
    def load(cls, path: Path | None = None) -> "StationSettings":
        """Read the settings file; a missing file gives defaults, a broken one
        raises ValueError naming the file."""
        path = Path(path) if path else cls.default_path()
        if not path.exists():
            s = cls()
            s._path = path  # type: ignore[attr-defined]
            return s
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"settings file {path} cannot be read: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"settings file {path} must hold a JSON object")
        known = {f.name for f in fields(cls)}
        s = cls(**{k: v for k, v in raw.items() if k in known})
        if s.on_history_failure not in ("spool", "stop"):
            raise ValueError(f"settings file {path}: on_history_failure must be \"spool\" or \"stop\", "
                             f"got {s.on_history_failure!r}")
        for key in ("history_server", "line_server"):
            from inspection_core.history.targets import check_target, is_server_target

            value = getattr(s, key)
            if value and not is_server_target(value):
                raise ValueError(f"settings file {path}: {key} must be a postgresql:// URL or a 'service=NAME' "
                                 f"string, got {value!r}")
            if value:
                check_target(value, f"settings file {path} ({key})")
        s._path = path  # type: ignore[attr-defined]
        return s

    @property
    def path(self) -> Path:
        return getattr(self, "_path", None) or self.default_path()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path | None = None) -> Path:
        """Write the settings atomically as indented JSON; returns the file."""
        target = Path(path) if path else self.path
        atomic_write_text(target, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", private=True)
        self._path = target  # type: ignore[attr-defined]
        return target

    # ---- resolved locations ----------------------------------------------------
    @property
    def station(self) -> str:
        return self.station_name or socket.gethostname() or "station"

    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else paths.data_dir()

    def history_db_path(self) -> Path:
        return Path(self.history_path).expanduser() if self.history_path else self.data_path() / paths.HISTORY_FILENAME

    def history_target(self) -> str | Path:
        """Where verdicts are recorded: the line's server when one is set, else the SQLite file."""
        return self.history_server.strip() or self.history_db_path()

    def image_dir_path(self) -> Path:
        return Path(self.image_dir).expanduser() if self.image_dir else self.data_path() / paths.KEPT_IMAGES_DIRNAME

    def models_path(self) -> Path:
        return Path(self.models_dir).expanduser() if self.models_dir else self.data_path() / "models"

    def demo_data_path(self) -> Path:
        return self.data_path() / "demo-data"

    # ---- role PIN ----------------------------------------------------------------
    @property
    def has_pin(self) -> bool:
        return bool(self.pin_hash and self.pin_salt)

    @staticmethod
    def _hash_pin(pin: str, salt_hex: str) -> str:
        return hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), bytes.fromhex(salt_hex), _PIN_ITERATIONS).hex()

    def set_pin(self, pin: str | None) -> None:
        """Store a salted hash of ``pin`` (never the PIN); None or "" removes it."""
        if not pin:
            self.pin_hash = self.pin_salt = ""
            return
        self.pin_salt = secrets.token_hex(16)
        self.pin_hash = self._hash_pin(pin, self.pin_salt)

    def check_pin(self, pin: str) -> bool:
        """True when no PIN is set or ``pin`` matches the stored hash."""
        if not self.has_pin:
            return True
        return hmac.compare_digest(self._hash_pin(pin, self.pin_salt), self.pin_hash)
