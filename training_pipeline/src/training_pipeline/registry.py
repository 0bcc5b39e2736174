"""The MLflow model registry: aliases and the append-only promotion log.

Every alias move — by the gate, by hand (``promote``) or by ``rollback`` — goes through
``move_alias``, which moves the alias and appends one record to the promotion log: a trail of
registered-model tags ``promotion.0001``, ``promotion.0002``, … whose values are JSON records
``{seq, time, actor, action, alias, from_version, to_version, reason, metrics}``. A tag of the
trail is never rewritten: a new record always takes the next free number.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import UTC, datetime
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from mlops_common import registry
from mlops_common.events.promotion import (
    PROMOTION_TAG_PREFIX,
    Action,
    PromotionRecord,
    promotion_tag,
)
from mlops_common.registry import alias_version, aliases
from mlops_common.registry import promotion_log as read_log
from training_pipeline.settings import CHAMPION, TrainingSettings

__all__ = ["Action", "PromotionRecord", "alias_version", "aliases", "promotion_tag", "read_log"]
#: metrics copied into every promotion record (those the version's run has)
KEY_METRICS: tuple[str, ...] = ("roc_auc", "top1_accuracy", "pr_auc", "log_loss", "brier_score")


class RegistryError(Exception):
    """A registry operation cannot be done as asked (the message says why)."""


def default_actor() -> str:
    """Who runs a manual operation: ``MLOPS_ACTOR`` when set, else the OS user."""
    explicit = os.environ.get("MLOPS_ACTOR", "").strip()
    if explicit:
        return explicit
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


def make_client(settings: TrainingSettings) -> MlflowClient:
    client: MlflowClient = registry.make_client(settings.tracking_uri)
    return client


def _append(client: MlflowClient, name: str, record: dict[str, Any]) -> PromotionRecord:
    """Write ``record`` under the next free ``promotion.NNNN`` tag; verify it landed (a concurrent
    writer that took the same number makes us retry with the next one)."""
    for _ in range(20):
        tags = client.get_registered_model(name).tags
        used = [
            int(key.removeprefix(PROMOTION_TAG_PREFIX))
            for key in tags
            if key.startswith(PROMOTION_TAG_PREFIX)
            and key.removeprefix(PROMOTION_TAG_PREFIX).isdigit()
        ]
        seq = max(used, default=0) + 1
        entry = PromotionRecord.model_validate({**record, "seq": seq})
        value = entry.model_dump_json()
        client.set_registered_model_tag(name, entry.tag_key, value)
        if client.get_registered_model(name).tags.get(entry.tag_key) == value:
            return entry
    raise RegistryError(f"could not append to the promotion log of {name!r}")


def version_metrics(client: MlflowClient, name: str, version: str) -> dict[str, float]:
    """Key metrics of the run that produced a version (empty when it has no run)."""
    run_id = client.get_model_version(name, version).run_id
    if not run_id:
        return {}
    metrics = client.get_run(run_id).data.metrics
    return {k: float(metrics[k]) for k in KEY_METRICS if k in metrics}


def require_version(client: MlflowClient, name: str, version: str) -> None:
    try:
        client.get_model_version(name, version)
    except MlflowException as exc:
        if registry.is_not_found(exc):
            raise RegistryError(f"{name} has no version {version}") from None
        raise


def move_alias(
    client: MlflowClient,
    name: str,
    alias: str,
    to_version: str,
    *,
    actor: str,
    action: Action,
    reason: str,
    metrics: dict[str, float] | None = None,
) -> PromotionRecord:
    """Point ``alias`` at ``to_version`` and append the move to the promotion log."""
    if not reason.strip():
        raise RegistryError("an alias move needs a reason")
    require_version(client, name, to_version)
    from_version = alias_version(client, name, alias)
    client.set_registered_model_alias(name, alias, to_version)
    record = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "actor": actor,
        "action": action,
        "alias": alias,
        "from_version": from_version,
        "to_version": str(to_version),
        "reason": reason.strip(),
        "metrics": (
            metrics if metrics is not None else version_metrics(client, name, str(to_version))
        ),
    }
    try:
        return _append(client, name, record)
    except BaseException:
        # an unrecorded move must not stay: put the alias back
        if from_version is None:
            client.delete_registered_model_alias(name, alias)
        else:
            client.set_registered_model_alias(name, alias, from_version)
        raise


def _alias_holder(settings: TrainingSettings, alias: str) -> tuple[MlflowClient, str, str | None]:
    """A registry client, the model's name and the version ``alias`` points at (None: unset)."""
    client = make_client(settings)
    name = settings.model_name
    return client, name, alias_version(client, name, alias)


def promote(
    settings: TrainingSettings,
    version: str,
    *,
    alias: str = CHAMPION,
    reason: str,
    actor: str | None = None,
) -> PromotionRecord:
    """Manual promotion (bypasses the gate; the log says who did it and why)."""
    client, name, current = _alias_holder(settings, alias)
    require_version(client, name, version)
    if current == str(version):
        raise RegistryError(f"{name}@{alias} is already version {version}: nothing to move")
    return move_alias(
        client,
        name,
        alias,
        str(version),
        actor=actor or default_actor(),
        action="promote",
        reason=reason,
    )


def alias_stack(records: list[PromotionRecord], alias: str) -> list[str]:
    """The versions an alias has held, replayed from the log: promotions push, rollbacks pop.
    The last element is the current holder; the one before it is what a rollback restores."""
    stack: list[str] = []
    for record in records:
        if record.alias != alias:
            continue
        if record.action == "rollback":
            if stack:
                stack.pop()
            if not stack or stack[-1] != record.to_version:
                stack.append(record.to_version)
        else:
            stack.append(record.to_version)
    return stack


def rollback(
    settings: TrainingSettings,
    *,
    alias: str = CHAMPION,
    reason: str,
    actor: str | None = None,
) -> PromotionRecord:
    """Move ``alias`` back to the version that held it before the current one (by the promotion
    log; refused when the alias was moved outside the platform or that version is gone)."""
    client, name, current = _alias_holder(settings, alias)
    if current is None:
        raise RegistryError(f"{name} has no {alias!r} alias: nothing to roll back")
    stack = alias_stack(read_log(client, name), alias)
    if not stack or stack[-1] != current:
        raise RegistryError(
            f"{name}@{alias} is version {current} but the promotion log says "
            f"{stack[-1] if stack else 'nothing'}: the alias was moved outside the platform; "
            "use `promote` to set it explicitly"
        )
    if len(stack) < 2:
        raise RegistryError(
            f"{name}@{alias} (version {current}) has no earlier holder to roll back to"
        )
    target = stack[-2]
    try:
        require_version(client, name, target)
    except RegistryError:
        raise RegistryError(
            f"the previous {alias} (version {target}) no longer exists; use `promote`"
        ) from None
    return move_alias(
        client,
        name,
        alias,
        target,
        actor=actor or default_actor(),
        action="rollback",
        reason=reason,
    )


def history(settings: TrainingSettings) -> tuple[list[PromotionRecord], dict[str, str]]:
    """The promotion log and the current aliases."""
    client = make_client(settings)
    return read_log(client, settings.model_name), aliases(client, settings.model_name)


def format_history(records: list[PromotionRecord], current: dict[str, str]) -> str:
    lines = []
    if current:
        lines.append("aliases: " + ", ".join(f"{a} -> v{v}" for a, v in sorted(current.items())))
    else:
        lines.append("aliases: none")
    if not records:
        lines.append("promotion log: empty")
        return "\n".join(lines)
    lines.append(
        f"{'seq':>4}  {'time':25}  {'action':8}  {'alias':10}  {'move':11}  actor / reason"
    )
    for r in records:
        move = f"{('v' + r.from_version) if r.from_version else '-'} -> v{r.to_version}"
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in r.metrics.items())
        lines.append(
            f"{r.seq:>4}  {r.time:25}  {r.action:8}  {r.alias:10}  {move:11}  {r.actor}: "
            f"{r.reason}" + (f"  [{metrics}]" if metrics else "")
        )
    return "\n".join(lines)


def dump_json(records: list[PromotionRecord], current: dict[str, str]) -> str:
    return json.dumps(
        {"aliases": current, "promotion_log": [r.model_dump() for r in records]}, indent=2
    )
