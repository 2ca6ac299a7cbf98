"""Serving: a model server that serves the version behind a registered alias and swaps without a gap."""
