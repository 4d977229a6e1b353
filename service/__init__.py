"""composer: a batch training service that turns MIDI corpora into an LSTM that writes piano music.

The folders say where the code runs: client/ (the user's machine), job/ (the Ray cluster), model/
and music/ and storage/ (both). ARCHITECTURE.md in the repository has the data path, the contracts
between these folders and the traps behind the less obvious choices.
"""

__version__ = "0.1.0"
