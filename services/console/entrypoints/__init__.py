"""The console\x27s web app."""
