"""Pure model-server logic (data in, data out): loaded versions and answers, feature refusals, model events."""
