"""One run's typed state: the record (state.json as one value), its store and ids, who may use it at a time,
its secrets file, and each phase's typed outcome."""
