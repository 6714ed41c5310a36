"""Suites that outgrow one machine: every shard at once (here or over an inventory's hosts), and `testbed
merge` of their run folders, which are untrusted input."""
