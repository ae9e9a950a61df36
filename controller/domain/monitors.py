"""Supervisor monitoring of a call bridged with an agent: one session, four modes.

A monitor session owns one supervisor leg (dialed from the supervisor's device), one bridge of
its own, and at most one snoop leg on the agent's leg:

- listen:  a snoop that hears both directions and speaks into none; supervisor + snoop share
           the monitor bridge, so the supervisor hears caller and agent and nobody hears them;
- whisper: a snoop that hears both directions and speaks "out" of the agent's leg, i.e. toward
           the agent's phone only; same bridge as listen;
- barge:   no snoop; the supervisor joins the call's own bridge and talks to both;
- takeover: the supervisor replaces the agent: it talks with the caller in the call's bridge,
           the agent's leg is hung up and the agent freed for its wrap-up. From then on the
           supervisor's leg is a leg of the call (``handed_over``): the call service handles
           it, and the call ends as any call does. There is no way back (``Conflict``).

A snoop's directions cannot change once made, so each switch between listen and whisper makes
a new snoop leg and hangs up the old one. The functions here are pure: they update the session
and return the switch commands that carry the change out, in order. A take-over is in two
steps, because the call's side of it (the agent released, the supervisor's leg added to the
call) is the call's own business: :meth:`Monitor.leave_for_takeover` says what the session
undoes first, and :meth:`Monitor.taken_over` what is left to clean once the call has the
supervisor.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controller.domain import commands as c
from controller.domain.errors import Conflict


class MonitorMode(StrEnum):
    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"
    TAKEOVER = "takeover"


class MonitorState(StrEnum):
    DIALING = "dialing"  # the supervisor's device rings
    ACTIVE = "active"  # the supervisor is up and arranged for the mode
    ENDED = "ended"


# (what the snoop hears, what it speaks into) on the agent's leg, per snooping mode.
SNOOP_DIRECTIONS: dict[MonitorMode, tuple[c.SnoopDirection, c.SnoopDirection]] = {
    MonitorMode.LISTEN: (c.SnoopDirection.BOTH, c.SnoopDirection.NONE),
    MonitorMode.WHISPER: (c.SnoopDirection.BOTH, c.SnoopDirection.OUT),
}

# Every leg and bridge of a session is named from its id, so the controller recognises them
# on the switch after a restart (and hangs them up: a session does not outlive its process).
ID_PREFIX = "mon-"
ARGS_TAG = "monitor"


@dataclass(slots=True)
class Monitor:
    id: str
    call_id: str
    device: str
    mode: MonitorMode
    agent_leg_id: str
    call_bridge_id: str
    watched_leg_ids: frozenset[str]  # the call's legs whose end ends the session
    state: MonitorState = MonitorState.DIALING
    snoop_leg_id: str | None = None
    snoops_made: int = 0
    bridge_created: bool = False
    supervisor_bridge: str | None = None  # the bridge the supervisor is in, if any
    handed_over: bool = False  # taken over: the supervisor's leg is the call's now

    @property
    def supervisor_leg_id(self) -> str:
        return f"{self.id}.supervisor"

    @property
    def bridge_id(self) -> str:
        return f"{self.id}.bridge"

    def dial(self) -> c.Originate:
        return c.Originate(leg_id=self.supervisor_leg_id, endpoint=self.device, args=(ARGS_TAG, self.id),
                           caller_id=f'"Monitor" <{self.call_id[:20]}>')

    @property
    def takeover_due(self) -> bool:
        """The supervisor is up and a take-over is asked for but not yet done."""
        return (self.mode is MonitorMode.TAKEOVER and self.state is MonitorState.ACTIVE
                and not self.handed_over)

    def supervisor_up(self) -> list[c.Command]:
        if self.state is not MonitorState.DIALING:
            return []
        self.state = MonitorState.ACTIVE
        if self.mode is MonitorMode.TAKEOVER:
            return []  # the call takes the supervisor in (takeover_due)
        return self._arrange()

    def switch_mode(self, mode: MonitorMode) -> list[c.Command]:
        """Commands for a switch between listen, whisper and barge; a switch to takeover is only
        recorded here (``takeover_due``), and a switch away from it is refused."""
        if self.mode is MonitorMode.TAKEOVER and mode is not MonitorMode.TAKEOVER:
            raise Conflict(f"monitor {self.id} has taken the call over; a take-over cannot be undone")
        if self.state is MonitorState.ENDED:
            return []
        changed, self.mode = mode is not self.mode, mode
        if not changed or self.state is MonitorState.DIALING or mode is MonitorMode.TAKEOVER:
            return []  # a ringing supervisor is arranged on answering, in the mode of that moment
        return self._arrange()

    def leave_for_takeover(self) -> list[c.Command]:
        """Take-over, first step (the session is not changed): the supervisor leaves the
        monitor bridge, so that the call can bridge it with the caller."""
        if self.supervisor_bridge is None or self.supervisor_bridge == self.call_bridge_id:
            return []
        return [c.RemoveFromBridge(self.supervisor_bridge, (self.supervisor_leg_id,))]

    @property
    def supervisor_in_call_bridge(self) -> bool:
        return self.supervisor_bridge == self.call_bridge_id

    def taken_over(self) -> list[c.Command]:
        """Take-over, last step, once the call has the supervisor in its bridge and the agent
        is let go: the snoop and the monitor bridge go; the session no longer watches the
        call's legs (the agent's leg ending is the take-over itself)."""
        self.mode, self.handed_over = MonitorMode.TAKEOVER, True
        self.supervisor_bridge = self.call_bridge_id
        self.watched_leg_ids = frozenset()
        commands: list[c.Command] = []
        if self.snoop_leg_id is not None:
            commands.append(c.Hangup(self.snoop_leg_id))
            self.snoop_leg_id = None
        if self.bridge_created:
            commands.append(c.DestroyBridge(self.bridge_id))
            self.bridge_created = False
        return commands

    def snoop_arrived(self, leg_id: str) -> list[c.Command]:
        """A snoop leg is up: the current one joins the monitor bridge, an outdated one goes."""
        if leg_id == self.snoop_leg_id and self.state is MonitorState.ACTIVE:
            return [c.AddToBridge(self.bridge_id, (leg_id,))]
        return [c.Hangup(leg_id)]

    def end(self) -> list[c.Command]:
        if self.state is MonitorState.ENDED:
            return []
        self.state = MonitorState.ENDED
        commands: list[c.Command] = [c.Hangup(self.supervisor_leg_id)]
        if self.snoop_leg_id is not None:
            commands.append(c.Hangup(self.snoop_leg_id))
            self.snoop_leg_id = None
        if self.bridge_created:
            commands.append(c.DestroyBridge(self.bridge_id))
            self.bridge_created = False
        self.supervisor_bridge = None
        return commands

    def _arrange(self) -> list[c.Command]:
        commands: list[c.Command] = []
        old_snoop, self.snoop_leg_id = self.snoop_leg_id, None
        if self.mode is MonitorMode.BARGE:
            commands += self._move_supervisor(self.call_bridge_id)
        else:
            if not self.bridge_created:
                commands.append(c.CreateBridge(self.bridge_id, name=f"monitor {self.call_id}"))
                self.bridge_created = True
            commands += self._move_supervisor(self.bridge_id)
            self.snoops_made += 1
            self.snoop_leg_id = f"{self.id}.snoop{self.snoops_made}"
            spy, whisper = SNOOP_DIRECTIONS[self.mode]
            # The directions ride along as arguments, so the snoop leg says what it is doing
            # in Asterisk's own view of it (``core show channel``, ARI's dialplan.app_data).
            commands.append(c.Snoop(self.agent_leg_id, self.snoop_leg_id, spy, whisper,
                                    args=(ARGS_TAG, self.id, f"spy={spy.value}", f"whisper={whisper.value}")))
        if old_snoop is not None:
            commands.append(c.Hangup(old_snoop))
        return commands

    def _move_supervisor(self, bridge_id: str) -> list[c.Command]:
        if self.supervisor_bridge == bridge_id:
            return []
        commands: list[c.Command] = []
        if self.supervisor_bridge is not None:
            commands.append(c.RemoveFromBridge(self.supervisor_bridge, (self.supervisor_leg_id,)))
        commands.append(c.AddToBridge(bridge_id, (self.supervisor_leg_id,)))
        self.supervisor_bridge = bridge_id
        return commands
