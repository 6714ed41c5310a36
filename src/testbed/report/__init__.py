"""What a run shows: its phase lines on the console, report.json, and GitHub Actions' summary, annotations
and outputs."""
