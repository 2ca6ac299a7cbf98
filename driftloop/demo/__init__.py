"""The closed-loop demo: a simulated production app on real drifting data, through the real services.

One concept per module: :mod:`dataset` (the data and which rows play which part), :mod:`model` (the demo
model's recipe, its first version and the oracle), :mod:`registration` (the first version into the
registry), :mod:`system` (the private local system the demo starts), :mod:`app` (the simulated production
app), :mod:`observers` (what the loop announces on Kafka and writes to ClickHouse), :mod:`timeline` (the
live terminal view), :mod:`summary` (the figures at the end), :mod:`report` (HTML and PNG) and :mod:`run`
(wiring it all together for ``driftloop demo``).
"""
