"""Workflows: chains, groups and chords of tasks, kept in the database (see canvas.py).

    from conveyor.workflows import chain, group, chord
    wf = chain(add.s(4, 6), add.s(1)).enqueue()
    wf.wait(timeout=30).return_value   # 11

Import-light on purpose: conveyor.backend (loaded with the settings) gives tasks `.s()`.
"""

from conveyor.workflows.canvas import Chain, Chord, Group, Signature, chain, chord, group

__all__ = ["Chain", "Chord", "Group", "Signature", "chain", "chord", "group"]
