"""Networking with international operators: foreign operators, B2B events, agendas and meeting outcomes."""
