"""Ingest: HTTP endpoints and the stream validator that let prediction and label events into the pipeline."""
