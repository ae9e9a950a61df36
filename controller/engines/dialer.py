"""The real-time dialer's decisions: how many calls a running campaign places now, and what
the end of a customer's leg means for the contact.

Pure: the ACD's state, the campaign's calls in flight and ``now`` in; counts and outcomes out.
No clock, no I/O. The dialer service (services/dialer.py) calls :func:`decide` about once a
second per running campaign and originates ``lines`` contacts from the hopper.

How it counts. The agents serving a campaign are the members of its queue (the ACD's copy of
the queue, so groups are already resolved). Of them, as engines/pacing.py wants them:

- *free*: ``available`` in the ACD, less one for every customer who has answered and waits
  for an agent in the queue (the ACD will hand those the next free agents, so new lines must
  not count on them);
- *talking*: ``on_call`` on one of the campaign's calls (seconds since the state began), and
  ``reserved`` for one (an offer ringing: talking in a moment, 0 s);
- *wrapping up*: in ``wrap_up``, with the seconds left.

Agents paused, logged out, unreachable or busy with calls of other queues count nowhere. The
calls being dialed are the customer legs still ringing (seconds since the originate).

Then the campaign's mode decides, through engines/pacing.py (one formula each, documented
there): preview places no call but offers free agents a contact each (``previews``, less the
previews already waiting on an agent); progressive places one per free agent not already
covered by a ringing line; power ``ceil(ratio × free)`` less the ringing ones; predictive the
most lines that keep the expected abandonment under the planning rate. The result is further
held to the contacts at hand and to a per-round cap, so a burst of free agents does not
originate hundreds of calls in one go.

Outcomes: a leg that ended without answering is judged by its Q.850 cause
(:func:`unanswered_outcome`); 17 busy, 18/19 (and a ring timeout) no answer, 34/38/42
congestion, anything else failed. Congestion has no outcome of its own in the campaign's
retry rules: it is recorded as ``failed`` with the reason ``congestion``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from controller.domain.agents import AgentState
from controller.domain.campaigns import CampaignMode, Outcome
from controller.domain.errors import InvalidRequest
from controller.engines import pacing
from controller.engines.acd import AcdState

# How long an answered customer may wait for an agent before the safe-harbor message plays.
# Under pacing.SAFE_HARBOR_S (2 s) with room to start the playback; long enough for an
# auto-answering agent's offer (a round trip through the ACD's log and an originate).
HOLD_FOR_AGENT_S = 1.5

# Q.850 causes of a leg that never answered.
CAUSE_BUSY = 17
NO_ANSWER_CAUSES = frozenset({18, 19})
CONGESTION_CAUSES = frozenset({34, 38, 42})


@dataclass(frozen=True, slots=True)
class AgentsView:
    """The campaign queue's agents as the pacing counts them (see the module docstring)."""

    free: int = 0
    talking_s: tuple[float, ...] = ()
    wrapping_up_s: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.free < 0:
            raise InvalidRequest("free agents must not be negative")


@dataclass(frozen=True, slots=True)
class InFlight:
    """The campaign's own calls now: ``dialing_s``, seconds since each ringing customer leg was
    originated; ``waiting``, customers who answered and wait for an agent; ``previews``,
    contacts offered to agents in preview and not yet accepted or skipped."""

    dialing_s: tuple[float, ...] = ()
    waiting: int = 0
    previews: int = 0

    def __post_init__(self) -> None:
        if self.waiting < 0 or self.previews < 0:
            raise InvalidRequest("waiting and previews must not be negative")


@dataclass(frozen=True, slots=True)
class DialDecision:
    """``lines``: calls to originate now; ``previews``: contacts to offer agents now (preview
    mode); ``basis``: which pacing rule gave it; ``dial_level``: lines ringing per working agent
    after this decision (None without working agents)."""

    lines: int
    previews: int
    basis: pacing.Basis
    dial_level: float | None = None


def pacing_settings(mode: CampaignMode, ratio: float | None, abandon_target_pct: float,
                    max_lines: int | None = None) -> pacing.PacingSettings:
    """A campaign's settings as the pacing engine takes them."""
    return pacing.PacingSettings(
        mode=pacing.DialMode(mode.value),
        power_ratio=ratio if mode is CampaignMode.POWER and ratio is not None else 1.0,
        target_abandon_rate=abandon_target_pct / 100.0,
        hold_for_agent_s=HOLD_FOR_AGENT_S,
        max_lines=max_lines,
    )


def agents_view(state: AcdState, queue: str, campaign_calls: Collection[str], now: datetime) -> AgentsView:
    """Count the members of ``queue`` for the pacing: free, talking on (or being offered) one
    of ``campaign_calls``, wrapping up. An unknown queue has no agents."""
    config = state.queues.get(queue)
    if config is None:
        return AgentsView()
    offered = {agent_id for offer in state.offers.values() if offer.call_id in campaign_calls
               for agent_id in offer.agent_ids}
    free = 0
    talking: list[float] = []
    wrapping: list[float] = []
    for agent_id, _ in config.members:
        agent = state.agents.get(agent_id)
        if agent is None:
            continue
        match agent.state:
            case AgentState.AVAILABLE:
                free += 1
            case AgentState.RESERVED if agent_id in offered:
                talking.append(0.0)
            case AgentState.ON_CALL if any(busy.call_id in campaign_calls
                                           for busy in state.talking.get(agent_id, ())):
                since = agent.state_since or now
                talking.append(max(0.0, (now - since).total_seconds()))
            case AgentState.WRAP_UP:
                until = agent.wrap_up_until or now
                wrapping.append(max(0.0, (until - now).total_seconds()))
    return AgentsView(free, tuple(talking), tuple(wrapping))


def staffed(state: AcdState, queue: str) -> bool:
    """Whether ``queue`` has a member logged in with a reachable device (paused and busy ones
    count): without one the ACD turns a caller away at once, so an answered customer gets the
    message straight away instead."""
    config = state.queues.get(queue)
    if config is None:
        return False
    return any((agent := state.agents.get(agent_id)) is not None
               and agent.state not in (AgentState.LOGGED_OUT, AgentState.UNAVAILABLE)
               for agent_id, _ in config.members)


def decide(settings: pacing.PacingSettings, agents: AgentsView, in_flight: InFlight, *,
           history: pacing.DialHistory | None = None, window: pacing.AbandonWindow | None = None,
           contacts: int | None = None, max_per_round: int | None = None) -> DialDecision:
    """How many calls to place (or previews to offer) now. ``contacts``: how many the hopper
    can give at most (None: unknown, not a limit); ``max_per_round``: the most originates in
    one round."""
    if contacts is not None and contacts < 0:
        raise InvalidRequest("contacts must not be negative")
    if max_per_round is not None and max_per_round < 0:
        raise InvalidRequest("max_per_round must not be negative")
    live = pacing.CampaignLive(
        free_agents=max(0, agents.free - in_flight.waiting),
        talking_s=agents.talking_s,
        wrapping_up_s=agents.wrapping_up_s,
        dialing_s=in_flight.dialing_s,
    )
    decided = pacing.decide(settings, live, history or pacing.DialHistory(), window or pacing.AbandonWindow())
    limit = min(x for x in (contacts, max_per_round, math.inf) if x is not None)
    lines = int(min(decided.lines, limit))
    previews = int(min(max(0, decided.previews - in_flight.previews), limit))
    return DialDecision(lines, previews, decided.basis, decided.dial_level)


def unanswered_outcome(cause: int | None, cause_text: str | None = None) -> tuple[Outcome, str]:
    """The outcome of a customer's leg that ended without answering, and why, from its Q.850
    cause (``None`` or 0: never dialed, e.g. the originate was refused)."""
    if cause == CAUSE_BUSY:
        return Outcome.BUSY, "busy"
    if cause in NO_ANSWER_CAUSES:
        return Outcome.NO_ANSWER, "no answer"
    if cause in CONGESTION_CAUSES:
        return Outcome.FAILED, "congestion"
    if not cause:
        return Outcome.FAILED, f"not dialed: {cause_text}" if cause_text else "not dialed"
    return Outcome.FAILED, f"cause {cause}" + (f" ({cause_text})" if cause_text else "")
