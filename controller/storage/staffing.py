"""The history a staffing forecast reads: a queue's offered calls and handle times, counted in
bins of real time.

Which calls, and how long they took:

- *offered* to a queue: calls that started in the window and either ended up in that queue
  (``calls.data->>'queue'``, the last queue the caller waited in) or left it for another
  (a ``QueueOverflowed`` event naming it). A call counts in the bin of its start.
- *handled*, with a handle time, only in the queue where an agent answered: for each
  ``AgentConnected`` event, talk (and hold) from that moment to the end of the agent's leg,
  plus the wrap-up that followed: the agent state log's ``wrap_up`` row right after the
  agent's ``on_call`` row for that call, until the agent's next state. Calls whose agent leg
  has not ended are left out of the handle time (not of the offered count).
- a *callback* (the call made back to a caller who left the queue for one, ``callback_of`` in
  its data) is the same caller's demand: it is not offered again, but its handle time counts,
  in the bin it started in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from controller.engines.forecast import HistoryBin

# The agent state rows of a call's wrap-up may come after the window's end (a call that started
# just before it); this much later is still read.
WRAP_UP_SLACK = timedelta(days=1)

HISTORY_BINS = """
WITH offered AS (
    SELECT c.id, c.started_at, coalesce(c.data->>'queue' = %(queue)s, false) AS answered_here,
           c.data ? 'callback_of' AS callback
    FROM calls c
    WHERE c.started_at >= %(since)s AND c.started_at < %(until)s
      AND (c.data->>'queue' = %(queue)s
           OR EXISTS (SELECT 1 FROM call_events ev
                      WHERE ev.call_id = c.id AND ev.kind = 'QueueOverflowed'
                        AND ev.data->>'queue' = %(queue)s))
),
connected AS (
    SELECT ev.call_id, ev.data->>'agent_id' AS agent_id,
           extract(epoch FROM l.ended_at - ev.at) AS talk_s
    FROM offered o
    JOIN call_events ev ON ev.call_id = o.id AND ev.kind = 'AgentConnected'
    JOIN legs l ON l.id = ev.leg_id
    WHERE o.answered_here AND l.ended_at IS NOT NULL
),
states AS (
    SELECT s.state, s.at,
           lag(s.state) OVER agent AS previous_state,
           lag(s.call_id) OVER agent AS previous_call,
           lead(s.at) OVER agent AS next_at
    FROM agent_state_log s
    WHERE s.agent_id IN (SELECT DISTINCT agent_id FROM connected WHERE agent_id IS NOT NULL)
      AND s.at >= %(since)s AND s.at < %(until)s + %(slack)s
    WINDOW agent AS (PARTITION BY s.agent_id ORDER BY s.at, s.id)
),
wrap_up AS (
    SELECT previous_call AS call_id, sum(extract(epoch FROM next_at - at)) AS wrap_s
    FROM states
    WHERE state = 'wrap_up' AND previous_state = 'on_call' AND previous_call IS NOT NULL
      AND next_at IS NOT NULL
    GROUP BY previous_call
),
handled AS (
    SELECT c.call_id, sum(c.talk_s) + coalesce(max(w.wrap_s), 0) AS handle_s
    FROM connected c LEFT JOIN wrap_up w ON w.call_id = c.call_id
    GROUP BY c.call_id
)
SELECT date_bin(%(bin)s, o.started_at, timestamptz '2000-01-01 00:00:00+00') AS start,
       count(*) FILTER (WHERE NOT o.callback) AS offered,
       count(h.call_id) AS handled,
       coalesce(sum(h.handle_s), 0)::float8 AS handle_s
FROM offered o LEFT JOIN handled h ON h.call_id = o.id
GROUP BY 1
ORDER BY 1
"""


async def history_bins(conn: psycopg.AsyncConnection, queue: str, since: datetime, until: datetime,
                       bin_min: int) -> list[HistoryBin]:
    """The queue's calls that started in ``[since, until)``, counted in bins of ``bin_min``
    minutes aligned on UTC."""
    cursor = await conn.execute(HISTORY_BINS, {
        "queue": queue, "since": since, "until": until, "slack": WRAP_UP_SLACK,
        "bin": timedelta(minutes=bin_min),
    })
    return [HistoryBin(row["start"], row["offered"], row["handled"], row["handle_s"])
            for row in await cursor.fetchall()]
