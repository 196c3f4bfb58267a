"""Circuit breakers, one per 'provider/model', shared by every worker through Postgres.

Rules (settings `MAHSM_BREAKER_*`):

- A retryable provider failure (5xx, 429, 408/409, timeouts, connection errors) counts; a
  4xx does not (a retry, or another model, would not fix the request).
- `failures` counted failures within `window_s` seconds open the circuit.
- While open, calls are rejected before any provider call, with an `ApplicationError` of type
  `CircuitOpen` naming the model and when it will probe.
- After `cooldown_s`, exactly one call is let through as a probe (half-open): the row is
  locked while it is claimed, so two workers never both probe. An answer closes the circuit,
  a counted failure opens it again for another cool-down. A probe that never reports back
  (its worker died) is replaced after `probe_timeout_s`.

Times come from the database clock, so every worker agrees on windows and cool-downs. The
breaker protects the provider, it is not a dependency: when Postgres cannot be reached,
calls go through unguarded (logged).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from mahsm.activities.llm.errors import LLMCallError
from mahsm.redaction import redact_text
from mahsm.settings import Settings

State = Literal["closed", "open", "half_open"]
CIRCUIT_OPEN = "CircuitOpen"
"""`ApplicationError.type` of a call rejected by an open circuit."""
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
_ERROR_CHARS = 300


@dataclass(frozen=True)
class BreakerConfig:
    """The breaker's rules; `from_settings` reads them from `MAHSM_BREAKER_*`."""

    failures: int = 5
    window_s: float = 60.0
    cooldown_s: float = 30.0
    probe_timeout_s: float = 330.0
    skip_providers: frozenset[str] = frozenset({"scripted"})

    @classmethod
    def from_settings(cls, settings: Settings) -> BreakerConfig:
        """The rules a worker runs with; a probe may take as long as one LLM attempt."""
        skipped = {p.strip() for p in settings.breaker_skip_providers.split(",") if p.strip()}
        return cls(
            failures=settings.breaker_failures,
            window_s=settings.breaker_window_s,
            cooldown_s=settings.breaker_cooldown_s,
            probe_timeout_s=settings.llm_timeout_s + settings.breaker_cooldown_s,
            skip_providers=frozenset(skipped),
        )


@dataclass(frozen=True)
class Breaker:
    """One row of `provider_breakers`."""

    model: str
    state: State = "closed"
    failures: tuple[datetime, ...] = ()
    last_error: str | None = None
    opened_at: datetime | None = None
    next_probe_at: datetime | None = None
    probe_started_at: datetime | None = None


@dataclass(frozen=True)
class Admission:
    """How a call was let through: `probe` when it is the half-open circuit's one probe."""

    model: str
    guarded: bool
    probe: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """What a failed call did to its breaker: the notes for the log, and whether it opened."""

    notes: list[str]
    opened: bool = False
    cooldown_s: float = 0.0

    def raised(self, error: ApplicationError, *, has_fallback: bool) -> ApplicationError:
        """The error the activity raises: a failure that opened the circuit ends the attempts.

        Every further attempt would be rejected until the cool-down is over: with a fallback
        model the call moves on at once (`CircuitOpen`, non-retryable), without one it is
        retried after the cool-down. Either way the workflow sees the transition's note.
        """
        if not self.opened:
            return error
        return ApplicationError(
            error.message,
            *error.details,
            type=CIRCUIT_OPEN if has_fallback else error.type,
            non_retryable=has_fallback,
            next_retry_delay=None if has_fallback else timedelta(seconds=self.cooldown_s),
        )


Decision = tuple[Breaker, str] | None
"""The breaker's new row and the transition's note, or None when nothing changes."""


class CircuitBreakers:
    """The breakers of one worker process, over the `provider_breakers` table.

    Args:
        pool: The MAHSM database; None disables every breaker (e.g. a worker without one).
        config: The rules.
    """

    def __init__(self, pool: asyncpg.Pool | None, config: BreakerConfig | None = None) -> None:
        self._pool = pool
        self.config = config or BreakerConfig()
        self._known: set[str] = set()

    def guards(self, model: str) -> bool:
        """Whether calls of `model` ('provider/model') pass a breaker."""
        return self._pool is not None and model.partition("/")[0] not in self.config.skip_providers

    async def admit(self, model: str, *, has_fallback: bool) -> Admission:
        """Let a call of `model` through, or raise `CircuitOpen` without calling the provider.

        The rejection is non-retryable when the call has a fallback model to go to (the engine
        switches at once); otherwise it is retried once the cool-down is over.
        """
        if not self.guards(model):
            return Admission(model=model, guarded=False)
        try:
            row, now = await self._read(model)
            if row.state == "closed":
                return Admission(model=model, guarded=True)
            # Claimed under the row lock only when the read says a probe may be due.
            due = self._claim_probe(row, now) is not None
            claimed = await self._change(model, self._claim_probe) if due else None
        except _DB_ERRORS as error:
            return self._unguarded(model, error)
        if claimed is not None:
            return Admission(model=model, guarded=True, probe=True, notes=(claimed[1],))
        rejection = self._rejection(row, now, has_fallback=has_fallback)
        activity.logger.info("llm call rejected: %s", rejection.message, extra={"model": model})
        raise rejection

    async def succeeded(self, admission: Admission) -> list[str]:
        """The call got an answer: a probe closes the circuit. Returns the notes for the log."""
        notes = list(admission.notes)
        if admission.probe:
            note = await self._change_safely(admission.model, self._close)
            notes += [note] if note else []
        return notes

    async def failed(self, admission: Admission, error: LLMCallError) -> Verdict:
        """Count a retryable failure; it may open the circuit."""
        notes = list(admission.notes)
        if not admission.guarded:
            return Verdict(notes)
        if not error.retryable:
            # The provider answered, so it is up: a probe that got a 4xx closes the circuit.
            if admission.probe:
                note = await self._change_safely(admission.model, self._close)
                notes += [note] if note else []
            return Verdict(notes)
        text = redact_text(error.message)[:_ERROR_CHARS]  # stored: no secret may reach it

        def count(row: Breaker, now: datetime) -> Decision:
            return self._count_failure(row, now, text, probe=admission.probe)

        note = await self._change_safely(admission.model, count)
        if not note:
            return Verdict(notes)
        return Verdict([*notes, note], opened=True, cooldown_s=self.config.cooldown_s)

    # ---- decisions: the new row for the old one at the database's `now` -------------------

    def _claim_probe(self, row: Breaker, now: datetime) -> Decision:
        cooled = row.state == "open" and row.next_probe_at is not None and row.next_probe_at <= now
        stale = (
            row.state == "half_open"
            and row.probe_started_at is not None
            and row.probe_started_at <= now - timedelta(seconds=self.config.probe_timeout_s)
        )
        if not (cooled or stale):
            return None
        why = "the previous probe never reported back" if stale else "the cool-down is over"
        note = f"circuit for {row.model} half-open: one probe call let through ({why})"
        return replace(row, state="half_open", probe_started_at=now), note

    def _close(self, row: Breaker, now: datetime) -> Decision:
        if row.state == "closed":
            return None
        closed = replace(
            row, state="closed", failures=(), opened_at=None, next_probe_at=None,
            probe_started_at=None,
        )  # fmt: skip
        return closed, f"circuit for {row.model} closed after a successful probe"

    def _count_failure(self, row: Breaker, now: datetime, error: str, *, probe: bool) -> Decision:
        cfg = self.config
        since = now - timedelta(seconds=cfg.window_s)
        # Only the latest `failures` times can ever matter: the row stays small.
        recent = (*(f for f in row.failures if f > since), now)[-cfg.failures :]
        counted = replace(row, failures=recent, last_error=error)
        probe_at = now + timedelta(seconds=cfg.cooldown_s)
        opened = replace(
            counted, state="open", opened_at=now, next_probe_at=probe_at, probe_started_at=None
        )
        when = f"next probe at {_clock(probe_at)}"
        if row.state == "half_open" and probe:
            return opened, f"circuit for {row.model} re-opened: the probe failed ({error}); {when}"
        if row.state == "closed" and len(counted.failures) >= cfg.failures:
            return opened, (
                f"circuit for {row.model} opened after {_failures(len(counted.failures))} within"
                f" {cfg.window_s:g}s (last: {error}); {when}"
            )
        return counted, ""

    # ---- storage --------------------------------------------------------------------------

    async def _read(self, model: str) -> tuple[Breaker, datetime]:
        """The model's breaker (closed when it has no row) and the database's clock."""
        assert self._pool is not None
        if model not in self._known:  # listed by GET /providers from its first call on
            await self._pool.execute(
                "INSERT INTO provider_breakers (model) VALUES ($1) ON CONFLICT DO NOTHING", model
            )
            self._known.add(model)
        record = await self._pool.fetchrow(
            "SELECT b.*, now() AS db_now FROM (SELECT 1) AS one"
            " LEFT JOIN provider_breakers AS b ON b.model = $1",
            model,
        )
        assert record is not None
        if record["model"] is None:
            return Breaker(model=model), record["db_now"]
        return _breaker(record), record["db_now"]

    async def _change(
        self, model: str, decide: Callable[[Breaker, datetime], Decision]
    ) -> tuple[Breaker, str] | None:
        """Apply `decide` to the locked row; log and store a state change as a transition."""
        assert self._pool is not None
        async with self._pool.acquire() as conn, conn.transaction():
            if model not in self._known:
                await conn.execute(
                    "INSERT INTO provider_breakers (model) VALUES ($1) ON CONFLICT DO NOTHING",
                    model,
                )
            record = await conn.fetchrow(
                "SELECT *, now() AS db_now FROM provider_breakers WHERE model = $1 FOR UPDATE",
                model,
            )
            if record is None:  # the row was deleted by hand since this process saw it
                self._known.discard(model)
                return None
            before = _breaker(record)
            decision = decide(before, record["db_now"])
            if decision is None:
                return None
            after, note = decision
            await conn.execute(
                "UPDATE provider_breakers SET state = $2, failures = $3, last_error = $4,"
                " opened_at = $5, next_probe_at = $6, probe_started_at = $7, updated_at = now()"
                " WHERE model = $1",
                model, after.state, list(after.failures), after.last_error, after.opened_at,
                after.next_probe_at, after.probe_started_at,
            )  # fmt: skip
            if after.state != before.state:
                await conn.execute(
                    "INSERT INTO provider_breaker_transitions (model, from_state, to_state, reason)"
                    " VALUES ($1, $2, $3, $4)",
                    model, before.state, after.state, note,
                )  # fmt: skip
        if note:
            activity.logger.warning(
                note, extra={"model": model, "from_state": before.state, "to_state": after.state}
            )
        return after, note

    async def _change_safely(
        self, model: str, decide: Callable[[Breaker, datetime], Decision]
    ) -> str | None:
        try:
            changed = await self._change(model, decide)
        except _DB_ERRORS as error:
            self._unguarded(model, error)
            return None
        return changed[1] if changed and changed[1] else None

    def _unguarded(self, model: str, error: BaseException) -> Admission:
        activity.logger.warning(
            "circuit breaker for %s unavailable, call not guarded: %s",
            model,
            type(error).__name__,
            extra={"model": model, "error": str(error)[:_ERROR_CHARS]},
        )
        return Admission(model=model, guarded=False)

    def _rejection(self, row: Breaker, now: datetime, *, has_fallback: bool) -> ApplicationError:
        probe_at = row.next_probe_at
        delay = timedelta(seconds=self.config.cooldown_s)
        if row.state == "half_open":
            why, when = "a probe call is in flight", "it closes if the probe succeeds"
        else:
            why = f"open since {_clock(row.opened_at)} (last error: {row.last_error})"
            when = f"next probe at {_clock(probe_at)}"
            if probe_at is not None:
                delay = max(timedelta(seconds=1), probe_at - now)
        then = (
            "the next model of the chain serves the call"
            if has_fallback
            else "the call is retried then"
        )
        return ApplicationError(
            f"circuit for {row.model} is {row.state.replace('_', '-')}: {why}; no call made;"
            f" {when}; {then}",
            {
                "model": row.model,
                "state": row.state,
                "opened_at": _iso(row.opened_at),
                "next_probe_at": _iso(row.next_probe_at),
            },
            type=CIRCUIT_OPEN,
            non_retryable=has_fallback,
            next_retry_delay=None if has_fallback else delay,
        )


def _breaker(record: asyncpg.Record) -> Breaker:
    return Breaker(
        model=record["model"],
        state=record["state"],
        failures=tuple(record["failures"]),
        last_error=record["last_error"],
        opened_at=record["opened_at"],
        next_probe_at=record["next_probe_at"],
        probe_started_at=record["probe_started_at"],
    )


def _failures(count: int) -> str:
    return f"{count} failure" if count == 1 else f"{count} failures"


def _clock(when: datetime | None) -> str:
    return "?" if when is None else when.strftime("%H:%M:%S UTC")


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()
