"""The classical analysis: background, SST regression, OI of departures, error model."""
