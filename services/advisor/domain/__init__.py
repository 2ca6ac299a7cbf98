"""Pure scaling logic: trends, forecasts and the advice they lead to; data in, data out."""
