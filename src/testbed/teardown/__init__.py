"""Nothing a run starts outlives it: teardown from the state file, what is left without one (the reaper),
and gc."""
