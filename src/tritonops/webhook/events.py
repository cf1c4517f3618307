"""What a verified delivery says: MLflow's event envelope, parsed with bounded depth, and which events deploy (pure)."""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tritonops.core.naming import validate_name
from tritonops.errors import InputError, InvalidName
from tritonops.webhook.signature import (
    REPLAY_WINDOW_S,
    Delivery,
    Rejected,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


# MLflow's registry events are a few hundred bytes: 64 KiB bounds what a connection can make us hold.
MAX_BODY_BYTES = 64 << 10
MAX_JSON_DEPTH = 32
DEPLOY_ENTITY, DEPLOY_ACTION = "model_version_alias", "created"
REJECT_REASONS = ("missing_signature", "bad_signature", "stale_timestamp", "too_large", "malformed")
IGNORE_REASONS = ("event", "model", "alias", "invalid_name", "duplicate")


@dataclass(frozen=True)
class Event:
    entity: str
    action: str
    model: str | None = None
    alias: str | None = None
    version: str | None = None


def json_depth(body: bytes) -> int:
    """How deep ``body``'s arrays and objects nest, counted without parsing (strings skipped):
    a deep enough document makes ``json.loads`` recurse until RecursionError."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_event(body: bytes) -> Event:
    """MLflow's envelope ``{"entity", "action", "timestamp", "data": {...}}``; 400 if it is not one."""
    if json_depth(body) > MAX_JSON_DEPTH:
        raise Rejected(400, "malformed", f"body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(400, "malformed", f"body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "malformed", "body is not a JSON object")
    entity, action, data = payload.get("entity"), payload.get("action"), payload.get("data")
    if not isinstance(entity, str) or not isinstance(action, str):
        raise Rejected(400, "malformed", "body has no entity/action strings")
    if (entity, action) != (DEPLOY_ENTITY, DEPLOY_ACTION):
        return Event(entity, action)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("name"), str)
        or not isinstance(data.get("alias"), str)
    ):
        raise Rejected(400, "malformed", "an alias event without data.name and data.alias")
    version = data.get("version")
    return Event(entity, action, data["name"], data["alias"], None if version is None else str(version))


@dataclass(frozen=True)
class Rules:
    """Which events deploy: the alias-set event, for the models *and* aliases named.

    Nothing is followed by default: a receiver reachable by anyone who can register a model
    must not deploy every model and alias a signed event names. ``follow_all`` is that, spelt out.
    """

    models: frozenset[str] = frozenset()
    aliases: frozenset[str] = frozenset()
    follow_all: bool = False

    @classmethod
    def explicit(cls, models: frozenset[str], aliases: frozenset[str], follow_all: bool) -> Rules:
        """The receiver's allow-list as the operator gave it; refused (exit 2) if it is none."""
        for name in models:
            validate_name("model", name)
        for name in aliases:
            validate_name("alias", name)
        if follow_all and (models or aliases):
            raise InputError("--follow-all follows every model and alias: give it alone, or --model/--alias")
        if not follow_all and not (models and aliases):
            missing = " and ".join(f for f, given in (("--model", models), ("--alias", aliases)) if not given)
            raise InputError(
                f"name what the receiver follows: {missing} missing (each repeatable, e.g. "
                "--model fraud --alias champion), or --follow-all to deploy every model and alias "
                "a signed event names"
            )
        return cls(models, aliases, follow_all)

    def describe(self) -> str:
        if self.follow_all:
            return "every model and alias (--follow-all)"
        return f"models {sorted(self.models)}, aliases {sorted(self.aliases)}"

    def why_ignored(self, event: Event) -> str | None:
        if (event.entity, event.action) != (DEPLOY_ENTITY, DEPLOY_ACTION):
            return "event"
        if event.model is None or event.alias is None:
            return "event"
        try:
            validate_name("model", event.model)
            validate_name("alias", event.alias)
        except InvalidName:
            return "invalid_name"
        if not self.follow_all and event.model not in self.models:
            return "model"
        if not self.follow_all and event.alias not in self.aliases:
            return "alias"
        return None


class DeliveryMemory:
    """Ids of accepted deliveries, for the replay window, at most ``limit`` of them."""

    def __init__(self, window_s: float = REPLAY_WINDOW_S, limit: int = 100_000) -> None:
        self.window_s, self.limit = window_s, limit
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, delivery: Delivery, now: float) -> bool:
        """Remember ``delivery``; False if it was accepted before (atomic: one of two racing
        retries wins)."""
        with self._lock:
            horizon = now - 2 * self.window_s  # a timestamp this old fails verify() anyway
            while self._seen and (len(self._seen) >= self.limit or next(iter(self._seen.values())) < horizon):
                self._seen.popitem(last=False)
            if delivery.id in self._seen:
                return False
            self._seen[delivery.id] = delivery.timestamp
            return True

    def __len__(self) -> int:
        return len(self._seen)
