"""The storyboard page and where the render time went.

storyboard.py reads a film folder and writes its page (and serves it through serving.py: byte
ranges, nothing outside the folder); board.py is the page's
model (cards, chain rows, prompts); page.py renders it (page.css/page.js are package data in
data/review/); posters.py makes each clip's poster; timings.py splits render time into parts.

May import: planning, ledger, media, files, config, errors, urls.
"""
