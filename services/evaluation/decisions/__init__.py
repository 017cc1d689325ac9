"""Concession decrees and the decisions they issue (funded, waiting, not admitted), CUP and COR, and the
company's acceptance or renunciation. Tables `evaluation.decrees` and `decisions`: written only here."""
