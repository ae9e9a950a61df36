"""Backend-neutral vocabulary: calls, legs, bridges, events in and commands out.

A *call* is one conversation as a customer sees it; a *leg* is one channel on the switch
(the caller's, an agent's, a snoop); a *bridge* mixes legs. Events are facts reported by a
switch adapter; commands are what an engine wants a switch to do.
"""
