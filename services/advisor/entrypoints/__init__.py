"""How the advisor runs: its polling loop (stream.py) and its HTTP face (http.py)."""
