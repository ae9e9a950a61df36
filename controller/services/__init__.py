"""Services: load state, ask an engine, persist, execute commands, publish."""
