"""Report: plots (PNG) and tables made from results.json files."""
