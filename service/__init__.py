"""composer: a batch training service that turns MIDI corpora into an LSTM that writes piano music."""

__version__ = "0.1.0"
