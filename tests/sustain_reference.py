"""note_seq's sustain rule (`sequences_lib.apply_sustain_control_changes`), restated over pretty_midi's
instruments: the oracle that fastparse's pedal (fastparse/src/sustain.rs) must equal note for note.

Kept as note_seq writes it, on purpose: events sorted by (time, kind) with pedal-down < pedal-up <
note-on < note-off, one list of sounding notes and one pedal state per instrument, a note-on under the
pedal ending the sounding notes of its key (dropped when that leaves it no length), and what the pedal
still holds at the end ended at the last event."""

from __future__ import annotations

import pretty_midi

SUSTAIN_ON, SUSTAIN_OFF, NOTE_ON, NOTE_OFF = 0, 1, 2, 3


def sustained_rows(pm: pretty_midi.PrettyMIDI) -> list[tuple]:
    """The notes with the pedal applied, as sorted (start, pitch, end, velocity, program, is_drum) rows."""
    # [start, end, pitch, velocity, instrument, program, is_drum, kept], in note_seq's order: by instrument.
    notes = [[n.start, n.end, n.pitch, n.velocity, i, inst.program, inst.is_drum, True]
             for i, inst in enumerate(pm.instruments) for n in inst.notes]
    events: list[tuple[float, int, int]] = []
    events += [(n[0], NOTE_ON, k) for k, n in enumerate(notes) if not n[6]]
    events += [(n[1], NOTE_OFF, k) for k, n in enumerate(notes) if not n[6]]
    for i, inst in enumerate(pm.instruments):
        events += [(cc.time, SUSTAIN_ON if cc.value >= 64 else SUSTAIN_OFF, i)
                   for cc in inst.control_changes if cc.number == 64]
    events.sort(key=lambda e: (e[0], e[1]))  # stable, as note_seq's sort
    active: dict[int, list[int]] = {}
    down: dict[int, bool] = {}
    time = 0.0
    for time, kind, k in events:
        if kind in (SUSTAIN_ON, SUSTAIN_OFF):
            down[k] = kind == SUSTAIN_ON
            if kind == SUSTAIN_OFF:
                still = []
                for j in active.get(k, []):
                    if notes[j][1] < time:
                        notes[j][1] = time
                    else:
                        still.append(j)
                active[k] = still
            continue
        inst = notes[k][4]
        if kind == NOTE_ON:
            if down.get(inst):
                still = []
                for j in active.get(inst, []):
                    if notes[j][2] == notes[k][2]:
                        notes[j][1] = time
                        if notes[j][0] == notes[j][1]:
                            notes[j][7] = False
                    else:
                        still.append(j)
                active[inst] = still
            active.setdefault(inst, []).append(k)
        elif not down.get(inst) and k in active.get(inst, []):
            active[inst].remove(k)
    for held in active.values():
        for j in held:
            notes[j][1] = time
    return sorted((n[0], n[2], n[1], n[3], n[5], n[6]) for n in notes if n[7])
