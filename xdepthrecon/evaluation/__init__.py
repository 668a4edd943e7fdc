"""Scoring reconstructions: metrics, spectra, observing-system simulations, plots."""
