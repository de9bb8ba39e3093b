"""The storyboard page and where the render time went.

May import: planning, ledger, media, files, config, errors.
"""
