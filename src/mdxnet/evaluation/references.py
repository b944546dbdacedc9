"""The paper's published reference rows: median SDR (dB) over the 50 MUSDB test songs, SiSEC2018 BSS Eval v4.

Two versions of the KUIELAB-MDX-Net paper print different numbers for the same system, so every row names the
version that quotes it. Where the numbers were checked (and against what):

- ISMIR 2021 MDX workshop version: `paper.md` of the KUIELAB-MDX-Net submission in the public repository
  mdx-workshop/mdx-submissions21 at 836a682 (a commit of 24 Oct 2021 whose front matter is dated 10 August 2021;
  title "KUIELAB-MDX-Net"), table "Performance on the MUSDB Benchmark"; 98c4390 (26 Oct 2021) still prints
  these numbers. Its "KUIELAB-MDX-Net" row is the model with Mixer, "w/o Mixer" without, and
  "+ Demucs_v2" the blend submitted to the challenge.
- arXiv 2111.12203 version: the later revision of the same `paper.md` (commits f4022cf and 97b6502 of 1 Nov
  2021, where these numbers first appear; front matter dated 26 October 2021; title "KUIELab-MDX-Net: Finding a
  Balance between Performance and Resources ..."), whose ablation rows
  (TFC-TDF-U-Net v2 = without Mixer, v2 + Mixer, v2 + Demucs, KUIELab-MDX-Net = v2 + Mixer + Demucs) carry the
  numbers the project's developer guide attributes to arXiv 2111.12203 (8.81/6.52/7.65/5.70 and
  8.91/7.07/7.33/5.81). The arXiv PDF itself was not read; the agreement is with that revision.
- The five earlier systems (TFC-TDF-U-Net v1, X-UMX, Demucs v2, D3Net, ResUNetDecouple+) carry the same numbers
  in both revisions. They are checked only *as quoted* by the KUIELAB paper, not against their own papers.
  Note: "Demucs v2" is quoted as 6.84/6.86/7.01/4.42 (not 7.29/6.58/7.60/4.69, which the project guide listed
  as an unverified guess and which matches no revision).

The set each row was scored on (`ReferenceRow.dataset`): MUSDB18 (the AAC .stem.mp4 release), for every row.
- arXiv rows: "We report the median SDR over all 50 songs in the MUSDB18 test set" (mdx-submissions21 d7d2099
  paper.md line 144) and "we only reported SDRs evaluated on MUSDB18 [@MUSDB18], not MUSDB-HQ [@MUSDB18HQ]"
  (line 161); training was on MUSDB-HQ ("For training, we used the MUSDB-HQ dataset", line 121).
- workshop rows: the text says only "the MUSDB test set" (836a682 paper.md line 119) and "For training, we used
  the MUSDB-HQ dataset" (line 101); the set is read as MUSDB18 because the authors' scoring script scores
  `musdb18_dev_wav` (kuielab/mdx-net-submission, leaderbard_A_museval, eval_musdb18.py lines 7-8; the MUSDB18-HQ
  `dataset_hq` it defines on line 8 is unused) and the later revision of the same sentence names MUSDB18.
- the five earlier systems: quoted in the table of the "MUSDB18 benchmark" (d7d2099 paper.md lines 142-146).
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES = ("vocals", "drums", "bass", "other")
WORKSHOP = "ismir2021-mdx-workshop"
ARXIV = "arxiv-2111.12203"
VERSIONS = {
    WORKSHOP: "KUIELAB-MDX-Net, ISMIR 2021 MDX workshop paper (mdx-workshop/mdx-submissions21 paper.md at 836a682, "
              "a commit of 24 Oct 2021, front matter dated 10 Aug 2021)",
    ARXIV: "KUIELab-MDX-Net, arXiv 2111.12203 (as in mdx-workshop/mdx-submissions21 paper.md at f4022cf/97b6502, "
           "1 Nov 2021)",
}
_QUOTED = "as quoted in both paper versions' table"

# The releases a row or a run can be scored on (params data.dataset -> the name the table prints).
MUSDB18 = "MUSDB18"
MUSDB18HQ = "MUSDB18-HQ"
RELEASE_NAMES = {"musdb18": MUSDB18, "musdb18hq": MUSDB18HQ}


@dataclass(frozen=True)
class ReferenceRow:
    method: str
    sdr: dict[str, float | None]  # None = not verified, never guessed
    version: str  # WORKSHOP, ARXIV, or "both"
    source: str
    role: str = "baseline"  # baseline | no-mixer | mixer | blend (Mixer + Demucs) | blend-no-mixer (+ Demucs)
    dataset: str = MUSDB18  # the set it was scored on (see the module docstring for the sources)

    @property
    def verified(self) -> bool:
        return all(self.sdr.get(s) is not None for s in SOURCES)


def _row(method, values, version, source, role="baseline") -> ReferenceRow:
    return ReferenceRow(method, dict(zip(SOURCES, values, strict=True)), version, source, role)


REFERENCE_ROWS: tuple[ReferenceRow, ...] = (
    _row("TFC-TDF-U-Net (v1; Choi et al. 2020)", (7.98, 6.11, 5.94, 5.02), "both", _QUOTED),
    _row("X-UMX (Sawata et al. 2021)", (6.61, 6.47, 5.43, 4.64), "both", _QUOTED),
    _row("Demucs v2 (Défossez et al. 2021)", (6.84, 6.86, 7.01, 4.42), "both", _QUOTED),
    _row("D3Net (Takahashi & Mitsufuji 2021)", (7.24, 7.01, 5.25, 4.53), "both", _QUOTED),
    _row("ResUNetDecouple+ (Kong et al. 2021)", (8.98, 6.62, 6.04, 5.29), "both", _QUOTED),
    _row("KUIELAB-MDX-Net without Mixer", (8.91, 6.86, 7.30, 6.18), WORKSHOP, VERSIONS[WORKSHOP], "no-mixer"),
    _row("KUIELAB-MDX-Net with Mixer", (8.88, 7.09, 7.38, 6.29), WORKSHOP, VERSIONS[WORKSHOP], "mixer"),
    _row("KUIELAB-MDX-Net + Demucs v2 (blend)", (8.99, 7.69, 7.62, 6.56), WORKSHOP, VERSIONS[WORKSHOP], "blend"),
    _row("TFC-TDF-U-Net v2 (without Mixer)", (8.81, 6.52, 7.65, 5.70), ARXIV, VERSIONS[ARXIV], "no-mixer"),
    _row("v2 + Mixer", (8.91, 7.07, 7.33, 5.81), ARXIV, VERSIONS[ARXIV], "mixer"),
    _row("v2 + Demucs (blend)", (8.80, 7.14, 8.11, 5.90), ARXIV, VERSIONS[ARXIV], "blend-no-mixer"),
    _row("KUIELab-MDX-Net (v2 + Mixer + Demucs blend)", (9.00, 7.33, 7.86, 5.95), ARXIV, VERSIONS[ARXIV], "blend"),
)


# The runs that blend with Demucs v2 (the second system named `demucs` in params blend.second) and the role of
# the paper's row each compares with; other blends (a stand-in second system) compare with none.
BLEND_ROLES = {"blend-demucs": "blend", "blend-no-mixer-demucs": "blend-no-mixer"}


def paper_row(role: str, version: str) -> ReferenceRow | None:
    """The paper's row for our `no-mixer` / `mixer` run, or a Demucs blend run (BLEND_ROLES), in the chosen
    version (None when it has none)."""
    role = BLEND_ROLES.get(role, role)
    for row in REFERENCE_ROWS:
        if row.role == role and row.version == version:
            return row
    return None
