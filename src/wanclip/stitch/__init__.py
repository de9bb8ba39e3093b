"""Joining clips into the film. Modules, each importing only those above it:

``filtergraph`` (a -filter_complex and its argv; pure) -> ``graph`` (the one graph: cuts, normalise,
trim, offsets; pure) -> ``layout`` (the film cut into pieces and each piece's command; pure) -> ``run``
(running a plan, its result and errors) -> ``pieces`` (the background encoder) -> ``join`` (stitch,
stitch_film: the only "pieces or one graph" choice). ``contact_sheet`` draws the review sheet.

May import: planning.timeline, ledger, media, files, config, errors.
"""
