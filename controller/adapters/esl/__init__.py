"""FreeSWITCH over the Event Socket (ESL): wire protocol, asyncio client, translation.

See docs/freeswitch.md for what exists and what does not yet.
"""
