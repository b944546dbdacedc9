"""Random multitrack songs as MIDI: drum groove, bass line, chords + lead (the 'other' stem) and a sung melody.

Every choice (tempo, metre, key, scale, progression, section layout, instruments, patterns, levels, pans,
effects sends) is drawn from one numpy Generator, so a song is a pure function of its seed. The parts are kept
separate (one MIDI file per stem) so that each stem can be rendered on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mido
import numpy as np

TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9  # General MIDI channel 10

SCALES = {
    "major": [0, 2, 4, 5, 7, 9, 11],
    "minor": [0, 2, 3, 5, 7, 8, 10],
    "dorian": [0, 2, 3, 5, 7, 9, 10],
    "mixolydian": [0, 2, 4, 5, 7, 9, 10],
    "harmonic minor": [0, 2, 3, 5, 7, 8, 11],
}
NOTE_NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
# Chord progressions as scale degrees (0 = tonic).
PROGRESSIONS = [
    [0, 4, 5, 3], [0, 5, 3, 4], [5, 3, 0, 4], [0, 3, 4, 4], [0, 0, 3, 4], [1, 4, 0, 0],
    [0, 6, 5, 4], [0, 3, 0, 4], [5, 4, 3, 4], [0, 2, 3, 4], [3, 4, 0, 5], [0, 4, 3, 3],
]

# General MIDI programs (0-based) per role, from sensible families.
BASS_PROGRAMS = [32, 33, 34, 35, 36, 37, 38, 39]
CHORD_PROGRAMS = {
    # no choir-like pads (91 Pad 4 'choir', 94 Pad 7 'halo'): voices belong to the vocal stem only
    "block": [0, 4, 16, 17, 19, 48, 49, 50, 51, 88, 89, 90, 92, 95, 61],
    "arpeggio": [0, 1, 2, 4, 5, 6, 11, 12, 24, 25, 46, 108],
    "rhythm": [0, 2, 4, 16, 24, 25, 26, 27, 28, 29, 30, 61, 62],
}
LEAD_PROGRAMS = [11, 12, 13, 21, 22, 26, 27, 29, 40, 56, 60, 64, 65, 66, 68, 71, 73, 74, 80, 81, 83, 84]
VOICE_PROGRAMS = [52, 53, 54]  # Choir Aahs, Voice Oohs, Synth Voice
DRUM_KITS = [0, 8, 16, 24, 25, 32, 40]  # standard, room, power, electronic, TR-808, jazz, brush

KICK, SNARE, CLAP, RIM, CLOSED_HAT, PEDAL_HAT, OPEN_HAT, RIDE, CRASH = 36, 38, 39, 37, 42, 44, 46, 51, 49
TOMS = [50, 48, 47, 45, 43]
SHAKER, TAMBOURINE = 70, 54


@dataclass
class Note:
    beat: float
    length: float
    pitch: int
    velocity: int


@dataclass
class Part:
    """One instrument on one MIDI channel; `controls` are (beat, kind, value) with kind 'cc<N>' or 'bend'."""

    name: str
    channel: int
    program: int
    notes: list[Note] = field(default_factory=list)
    controls: list[tuple[float, str, int]] = field(default_factory=list)


@dataclass
class Section:
    name: str
    start_bar: int
    bars: int
    progression: list[int]
    vocals: bool
    lead: bool
    busy: bool


@dataclass
class Song:
    tempo: float
    beats_per_bar: int
    key: int
    scale: str
    sections: list[Section]
    swing: float
    stems: dict[str, list[Part]]
    description: dict

    @property
    def bars(self) -> int:
        return sum(s.bars for s in self.sections)


def beat_seconds(tempo: float) -> float:
    return 60.0 / tempo


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _layout(rng: np.random.Generator, total_bars: int, progressions: list[list[int]]) -> list[Section]:
    """Intro, then alternating verse/chorus sections (4 or 8 bars) until `total_bars` are covered."""
    sections = []
    intro = min(int(rng.choice([1, 1, 2])), total_bars // 4)  # short songs start singing at once
    lead = bool(rng.random() < 0.7)
    if intro:
        sections.append(Section("intro", 0, intro, progressions[0], vocals=False, lead=lead, busy=False))
    bar = intro
    kinds = ["verse", "chorus"] if rng.random() < 0.8 else ["chorus", "verse"]
    k = 0
    while bar < total_bars:
        name = kinds[k % 2]
        bars = int(rng.choice([4, 8])) if name == "verse" else 4
        chorus = name == "chorus"
        sing = k == 0 or rng.random() < 0.9  # the first section after the intro always has vocals
        sections.append(Section(name, bar, bars, progressions[1 + int(chorus)], vocals=bool(sing),
                                lead=bool(rng.random() < 0.5), busy=chorus))
        bar += bars
        k += 1
    return sections


def _chord_at(song: Song, bar: int) -> list[int]:
    """Pitch classes (relative to C) of the diatonic triad (sometimes seventh) on the bar's degree."""
    section = next(s for s in song.sections if s.start_bar <= bar < s.start_bar + s.bars)
    degree = section.progression[(bar - section.start_bar) % len(section.progression)]
    scale = SCALES[song.scale]
    steps = [0, 2, 4, 6] if song.description["sevenths"] else [0, 2, 4]
    return [(song.key + scale[(degree + s) % 7]) % 12 for s in steps]


def _section_of(song: Song, bar: int) -> Section:
    return next(s for s in song.sections if s.start_bar <= bar < s.start_bar + s.bars)


def _nearest(pitch_class: int, low: int, high: int, target: int) -> int:
    """The MIDI note of `pitch_class` in [low, high] closest to `target`."""
    options = [p for p in range(low, high + 1) if p % 12 == pitch_class]
    return min(options, key=lambda p: abs(p - target))


def _humanise(rng, velocity: float, spread: float = 10) -> int:
    return int(np.clip(velocity + rng.normal(0, spread), 20, 127))


# --------------------------------------------------------------------------------------------------- drums
def _drum_pattern(rng, steps: int, style: str, busy: bool) -> dict[int, list[int]]:
    """Drum hits per 16th step of one bar: {step: [notes]}."""
    beat = 4
    hits: dict[int, list[int]] = {s: [] for s in range(steps)}
    backbeats = [s for s in range(beat, steps, 2 * beat)] if steps == 16 else [beat, 2 * beat]
    if style == "halftime":
        backbeats = [steps // 2]
    snare = CLAP if style == "four" and rng.random() < 0.5 else (RIM if style == "brush" else SNARE)
    for s in backbeats:
        hits[s].append(snare)
    kicks = [0]
    if style == "four":
        kicks = list(range(0, steps, beat))
    else:
        extra = [s for s in range(2, steps) if s not in backbeats]
        kicks += [int(s) for s in rng.choice(extra, size=int(rng.integers(1, 4 if busy else 3)), replace=False)]
    for s in kicks:
        hits[s].append(KICK)
    hat = RIDE if style in ("brush", "ride") else CLOSED_HAT
    hat_step = 1 if (busy and rng.random() < 0.5) or style == "sixteenths" else 2
    for s in range(0, steps, hat_step):
        if style == "four" and s % beat == 2:
            hits[s].append(OPEN_HAT)
        else:
            hits[s].append(hat)
    if busy and rng.random() < 0.4:
        for s in range(beat, steps, beat):
            hits[s].append(TAMBOURINE)
    return hits


def _drums(rng, song: Song) -> Part:
    part = Part("drums", DRUM_CHANNEL, _pick(rng, DRUM_KITS))
    steps = song.beats_per_bar * 4
    style = song.description["drum_style"]
    patterns = {busy: _drum_pattern(rng, steps, style, busy) for busy in (False, True)}
    base_velocity = rng.uniform(80, 110)
    for section in song.sections:
        for bar in range(section.start_bar, section.start_bar + section.bars):
            first = bar == section.start_bar
            last = bar == section.start_bar + section.bars - 1
            pattern = patterns[section.busy]
            if section.name == "intro" and rng.random() < 0.5:
                pattern = {s: [n for n in v if n in (CLOSED_HAT, RIDE, KICK)] for s, v in pattern.items()}
            fill_from = steps - 4 if last and section.name != "intro" and rng.random() < 0.6 else steps
            for step in range(steps):
                beat = bar * song.beats_per_bar + _swung(step, song.swing) / 4
                accent = 1.0 if step % 4 == 0 else 0.85
                notes = pattern[step] if step < fill_from else [_pick(rng, TOMS + [SNARE])]  # a fill into the next section
                if first and step == 0 and section.name != "intro":
                    notes = notes + [CRASH]
                for note in notes:
                    part.notes.append(Note(beat, 0.25, note, _humanise(rng, base_velocity * accent, 8)))
    return part


def _swung(step: int, swing: float) -> float:
    """Delay off-beat 8ths (odd 16th pairs) by `swing` of a 16th."""
    return step + (swing * 2 if step % 4 == 2 else 0.0)


# ---------------------------------------------------------------------------------------------------- bass
def _bass(rng, song: Song) -> Part:
    part = Part("bass", 1, _pick(rng, BASS_PROGRAMS))
    eighths = song.beats_per_bar * 2
    rhythm = [0] + [s for s in range(1, eighths) if rng.random() < 0.45]
    legato = rng.uniform(0.5, 0.95)
    velocity = rng.uniform(85, 115)
    previous = 36
    for bar in range(song.bars):
        chord = _chord_at(song, bar)
        root = _nearest(chord[0], 28, 43, previous)
        busy = _section_of(song, bar).busy
        steps = rhythm if not busy else sorted(set(rhythm) | {s for s in range(eighths) if rng.random() < 0.2})
        for i, step in enumerate(steps):
            end = steps[i + 1] if i + 1 < len(steps) else eighths
            choice = rng.random()
            if step == 0 or choice < 0.55:
                pitch = root
            elif choice < 0.75:
                pitch = _nearest(chord[2 if len(chord) > 2 else 1], 28, 47, root)
            elif choice < 0.9:
                pitch = root + 12 if root + 12 <= 52 else root
            else:
                pitch = _nearest(chord[1], 28, 47, root)
            beat = bar * song.beats_per_bar + _swung(step * 2, song.swing) / 4
            part.notes.append(Note(beat, (end - step) / 2 * legato, pitch, _humanise(rng, velocity, 6)))
        previous = root
    return part


# --------------------------------------------------------------------------------------------------- other
def _chords(rng, song: Song) -> Part:
    style = _pick(rng, list(CHORD_PROGRAMS))
    part = Part("chords", 2, _pick(rng, CHORD_PROGRAMS[style]))
    song.description["chord_style"] = style
    centre = int(rng.integers(58, 68))
    velocity = rng.uniform(60, 95)
    bar_beats = song.beats_per_bar
    hits = [0] + [s for s in range(1, bar_beats * 2) if rng.random() < 0.4]
    arp_step = float(rng.choice([0.5, 0.25]))
    for bar in range(song.bars):
        voicing = sorted(_nearest(pc, 48, 84, centre) for pc in _chord_at(song, bar))
        start = bar * bar_beats
        if style == "block":
            for pitch in voicing:
                part.notes.append(Note(start, bar_beats * 0.98, pitch, _humanise(rng, velocity, 4)))
        elif style == "arpeggio":
            order = voicing + [voicing[0] + 12]
            for i in range(int(bar_beats / arp_step)):
                pitch = order[i % len(order)] if rng.random() < 0.85 else order[int(rng.integers(len(order)))]
                part.notes.append(Note(start + i * arp_step, arp_step * 1.5, pitch, _humanise(rng, velocity, 8)))
        else:
            for i, step in enumerate(hits):
                end = hits[i + 1] if i + 1 < len(hits) else bar_beats * 2
                for pitch in voicing:
                    part.notes.append(Note(start + step / 2, (end - step) / 2 * 0.8, pitch,
                                           _humanise(rng, velocity, 6)))
    return part


def _phrase_melody(rng, song: Song, first_bar: int, bars: int, low: int, high: int, density: float,
                   start_pitch: int) -> list[Note]:
    """A melody over `bars` bars: chord tones on strong beats, scale steps elsewhere, rests by `density`."""
    scale_pcs = [(song.key + s) % 12 for s in SCALES[song.scale]]
    scale_notes = [p for p in range(low, high + 1) if p % 12 in scale_pcs]
    notes, pitch = [], start_pitch
    beat = float(first_bar * song.beats_per_bar)
    end = beat + bars * song.beats_per_bar
    while beat < end - 0.25:
        length = float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
        length = min(length, end - beat)
        if rng.random() < density:
            bar = int(beat // song.beats_per_bar)
            strong = beat % 1 == 0
            if strong and rng.random() < 0.7:
                chord = _chord_at(song, bar)
                pitch = _nearest(_pick(rng, chord), low, high, pitch)
            else:
                idx = int(np.argmin([abs(p - pitch) for p in scale_notes]))
                idx = int(np.clip(idx + rng.choice([-2, -1, -1, 1, 1, 2, 0]), 0, len(scale_notes) - 1))
                pitch = scale_notes[idx]
            notes.append(Note(beat, length * 0.95, pitch, int(rng.integers(70, 110))))
        beat += length
    return notes


def _lead(rng, song: Song) -> Part:
    part = Part("lead", 3, _pick(rng, LEAD_PROGRAMS))
    low = int(rng.integers(60, 70))
    for section in song.sections:
        if not section.lead:
            continue
        # call and response: the lead plays mostly where the voice rests
        density = 0.35 if section.vocals else 0.8
        part.notes += _phrase_melody(rng, song, section.start_bar, section.bars, low, low + 17, density, low + 7)
    return part


# -------------------------------------------------------------------------------------------------- vocals
def _vocal_phrases(song: Song, rng) -> list[tuple[int, int]]:
    """(first_bar, bars) of each sung phrase: 1-2 bar phrases followed by a breath."""
    phrases = []
    for section in song.sections:
        if not section.vocals:
            continue
        bar = section.start_bar
        while bar < section.start_bar + section.bars:
            length = int(min(rng.choice([1, 2, 2]), section.start_bar + section.bars - bar))
            phrases.append((bar, length))
            bar += length + int(rng.random() < 0.5)
    return phrases


def _vibrato(part: Part, note: Note, tempo: float, rate_hz: float, depth_cents: float) -> None:
    """Pitch-bend LFO on one sustained note (bend range is the GM default of +-2 semitones)."""
    seconds = note.length * beat_seconds(tempo)
    onset = 0.15
    if seconds < onset + 0.1:
        return
    step = 0.03
    for t in np.arange(onset, seconds, step):
        ramp = min(1.0, (t - onset) / 0.2)
        cents = depth_cents * ramp * np.sin(2 * np.pi * rate_hz * (t - onset))
        value = int(np.clip(cents / 200.0 * 8191, -8192, 8191))
        part.controls.append((note.beat + t / beat_seconds(tempo), "bend", value))
    part.controls.append((note.beat + note.length, "bend", 0))


def _vocals(rng, song: Song) -> tuple[Part, list[tuple[float, float, list[Note]]]]:
    part = Part("vocals", 4, _pick(rng, VOICE_PROGRAMS))
    low = int(rng.integers(55, 64))  # a lower or higher voice
    rate, depth = rng.uniform(4.8, 6.2), rng.uniform(15, 45)
    phrases_out, pitch = [], low + 7
    for first_bar, bars in _vocal_phrases(song, rng):
        notes = _phrase_melody(rng, song, first_bar, bars, low, low + 14, 0.85, pitch)
        if notes:
            pitch = notes[-1].pitch
        for note in notes:
            _vibrato(part, note, song.tempo, rate, depth)
            # swell: expression rises over the first part of each note
            part.controls.append((note.beat, "cc11", 70))
            part.controls.append((note.beat + min(0.5, note.length / 2), "cc11", 120))
        part.notes += notes
        start = first_bar * song.beats_per_bar
        phrases_out.append((start, bars * song.beats_per_bar, notes))
    return part, phrases_out


# ---------------------------------------------------------------------------------------------------- song
def compose(rng: np.random.Generator, seconds: float) -> tuple[Song, list]:
    """A random song at least `seconds` long; returns it and the sung phrases (for the syllable layer)."""
    tempo = float(np.round(rng.uniform(78, 150), 1))
    beats_per_bar = 3 if rng.random() < 0.15 else 4
    bar_seconds = beats_per_bar * beat_seconds(tempo)
    total_bars = int(np.ceil(seconds / bar_seconds)) + 1
    progressions = [_pick(rng, PROGRESSIONS) for _ in range(3)]
    scale = _pick(rng, list(SCALES))
    style = _pick(rng, ["rock", "four", "halftime", "sixteenths", "ride", "brush"])
    swing = float(rng.choice([0.0, 0.0, 0.0, 0.15, 0.3]))
    key = int(rng.integers(12))
    description = {
        "tempo": tempo, "metre": f"{beats_per_bar}/4", "key": f"{NOTE_NAMES[key]} {scale}",
        "drum_style": style, "swing": swing, "sevenths": bool(rng.random() < 0.3),
    }
    song = Song(tempo, beats_per_bar, key, scale, _layout(rng, total_bars, progressions), swing, {}, description)
    drums, bass = _drums(rng, song), _bass(rng, song)
    other = [_chords(rng, song)]
    if rng.random() < 0.75:
        other.append(_lead(rng, song))
    vocals, phrases = _vocals(rng, song)
    song.stems = {"drums": [drums], "bass": [bass], "other": other, "vocals": [vocals]}
    description["programs"] = {stem: [p.program for p in parts] for stem, parts in song.stems.items()}
    description["sections"] = [f"{s.name}:{s.bars}" for s in song.sections]
    _mix_controls(rng, song)
    return song, phrases


def _mix_controls(rng, song: Song) -> None:
    """Per-part pan, volume, reverb and chorus sends at beat 0."""
    reverb = {"drums": (10, 50), "bass": (0, 25), "other": (20, 80), "vocals": (40, 100)}
    for stem, parts in song.stems.items():
        for part in parts:
            pan = 64 if stem in ("bass", "drums") else int(rng.integers(24, 104))
            lo, hi = reverb[stem]
            part.controls[:0] = [(0.0, "cc10", pan), (0.0, "cc7", 100), (0.0, "cc91", int(rng.integers(lo, hi))),
                                 (0.0, "cc93", int(rng.integers(0, 40))), (0.0, "cc11", 110)]


def to_midi(parts: list[Part], tempo: float, beats_per_bar: int) -> mido.MidiFile:
    """A type-1 MIDI file: a tempo track plus one track per part."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0))
    meta.append(mido.MetaMessage("time_signature", numerator=beats_per_bar, denominator=4, time=0))
    midi.tracks.append(meta)
    for part in parts:
        events = [(0, 0, mido.Message("program_change", channel=part.channel, program=part.program))]
        for beat, kind, value in part.controls:
            if kind == "bend":
                msg = mido.Message("pitchwheel", channel=part.channel, pitch=value)
            else:
                msg = mido.Message("control_change", channel=part.channel, control=int(kind[2:]), value=value)
            events.append((round(beat * TICKS_PER_BEAT), 1, msg))
        for note in part.notes:
            on = round(note.beat * TICKS_PER_BEAT)
            off = max(on + 1, round((note.beat + note.length) * TICKS_PER_BEAT))
            events.append((on, 2, mido.Message("note_on", channel=part.channel, note=note.pitch,
                                               velocity=note.velocity)))
            events.append((off, 0, mido.Message("note_off", channel=part.channel, note=note.pitch, velocity=0)))
        # note-offs before controls before note-ons at the same tick, so repeated pitches retrigger
        events.sort(key=lambda e: (e[0], e[1]))
        track, now = mido.MidiTrack(), 0
        for tick, _, msg in events:
            track.append(msg.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    return midi
