"""Pure decisions: (state, event) -> Decision(commands, new state). No I/O, no clock."""
