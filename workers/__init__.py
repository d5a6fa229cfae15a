"""The worker loop: claim a unit of work from the database, run it with the engine, write its result."""
