"""Aggregation, statistics and renderers for leaderboards."""
