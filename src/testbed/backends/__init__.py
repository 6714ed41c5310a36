"""Where servers run: the choice between Docker and native, each backend's start, and whether they are
still there."""
