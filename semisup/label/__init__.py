"""Labeling: the page ``semisup label`` serves (:mod:`.app`), the answers it writes into the
selection CSV (:mod:`.answers`), the trailers' thumbnail strips (:mod:`.thumbnails`), what a
session works on (:mod:`.session`), and the Label Studio round trip (:mod:`.studio`)."""
