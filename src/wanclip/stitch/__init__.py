"""Joining clips into the film: filtergraph building, the ffmpeg runner, pieces, the contact sheet.

May import: planning.timeline, ledger, media, files, config, errors, signals.
"""
