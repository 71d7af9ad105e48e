"""The decoder study: every zoo decoder (the paper's and the modern light ones that came
after it) and the NRD variants of the paper's Tables 2 and 4, trained with one encoder
and one budget, over several seeds.

Accuracy (mean and standard deviation over seeds) comes from the runs of
:mod:`nrdseg.analysis.experiments`; cost (GMACs, parameters, latency) from
:mod:`nrdseg.analysis.decoder_costs` at the paper's widths.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nrdseg.analysis.decoder_costs import DecoderCost, decoder_costs
from nrdseg.analysis.experiments import Budget, Run, execute
from nrdseg.analysis.feature_cache import FrozenBackboneCache
from nrdseg.analysis.figures import CostPoint, study_figure
from nrdseg.utils.atomic import atomic_write_bytes
from nrdseg.utils.names import did_you_mean

#: label -> (zoo model, group, what the paper calls it). Table order: decoders, then NRD's.
STUDY_MODELS: dict[str, tuple[str, str, str]] = {
    "bilinear": ("bilinear_r50", "decoder", "bilinear decoder (Table 1)"),
    "dlv3p": ("dlv3p_r50", "decoder", "DeepLabV3+ decoder (Table 1)"),
    "duc": ("duc_r50", "decoder", "DUC (Table 3)"),
    "carafe": ("carafe_r50", "decoder", "CARAFE (Table 3)"),
    "dupsample": ("dupsample_r50", "decoder", "DUpsampling, W learned"),
    "dysample": (
        "dysample_r50",
        "modern decoder",
        "DySample-S+, three x2 steps, no guidance (ICCV 2023)",
    ),
    "dlv3p_dysample": (
        "dlv3p_dysample_r50",
        "modern decoder",
        "DeepLabV3+ decoder, DySample for its x8 upsampling (ICCV 2023)",
    ),
    "segformer": ("segformer_r50", "modern decoder", "SegFormer all-MLP head, C = 256"),
    "segformer_slim": (
        "segformer_r50_slim",
        "modern decoder",
        "SegFormer all-MLP head, C = 144 (NRD's GMACs)",
    ),
    "segformer_linear": (
        "segformer_r50_linear",
        "modern decoder",
        "SegFormer all-MLP head, the paper's linear projections",
    ),
    "ifa": ("ifa_r50", "modern decoder", "IFA, released widths (ECCV 2022)"),
    "ifa_slim": ("ifa_r50_slim", "modern decoder", "IFA at half widths (NRD's GMACs)"),
    "freqfusion": ("freqfusion_r50", "modern decoder", "FreqFusion FPN (TPAMI 2024)"),
    "fade": ("fade_r50", "modern decoder", "FADE FPN (ECCV 2022)"),
    "sapa": ("sapa_r50", "modern decoder", "SAPA-G FPN (NeurIPS 2022)"),
    "nrd": ("nrd_r50", "NRD", "NRD, C_r = C_m = 16 (Tables 1-4)"),
    "nrd_coord_only": ("nrd_r50_coord_only", "NRD variant", "coordinates only (Tables 1, 4)"),
    "nrd_coord_only_zero_bias": (
        "nrd_r50_coord_only",
        "NRD variant",
        "coordinates only, the authors' zero controller bias (mlp_bias_init='zeros')",
    ),
    "nrd_guidance_only": ("nrd_r50_guidance_only", "NRD variant", "guidance only (Table 4)"),
    "nrd_template": (
        "nrd_r50",
        "NRD variant",
        "NRD, generated MLPs started from a template (mlp_bias_init='template')",
    ),
    "nrd_cr8": ("nrd_r50_cr8", "NRD variant", "C_r = 8 (Table 2)"),
    "nrd_cr32": ("nrd_r50_cr32", "NRD variant", "C_r = 32 (Table 2)"),
    "nrd_cm8": ("nrd_r50_cm8", "NRD variant", "C_m = 8 (Table 2)"),
    "nrd_cm32": ("nrd_r50_cm32", "NRD variant", "C_m = 32 (Table 2)"),
}


#: Options a study label adds to its zoo model.
STUDY_OPTIONS: dict[str, dict[str, Any]] = {
    "nrd_coord_only_zero_bias": {"mlp_bias_init": "zeros"},
    "nrd_template": {"mlp_bias_init": "template"},
}


#: The row the paired differences are taken against.
REFERENCE = "nrd"


@dataclass(frozen=True)
class Paired:
    """A row's per-seed differences from the reference row (same seeds), as fractions.

    ``miou`` and ``trimap`` (at the narrowest trimap width) hold one difference per seed
    in ``seeds``. A mean difference is *beyond the seed spread* (``clear_miou``,
    ``clear_trimap``) when every seed's difference has the same sign and the mean's size
    exceeds the larger of the two rows' standard deviations over seeds: with three seeds,
    a difference that seed noise alone is unlikely to give.
    """

    reference: str
    seeds: tuple[int, ...]
    miou: tuple[float, ...]
    trimap: tuple[float, ...]
    clear_miou: bool
    clear_trimap: bool


def _clear(differences: Sequence[float], spread: float) -> bool:
    same_sign = all(d > 0 for d in differences) or all(d < 0 for d in differences)
    return same_sign and abs(statistics.fmean(differences)) > spread


def paired_differences(
    records: Sequence[dict[str, Any]], label: str, *, reference: str = REFERENCE
) -> Paired | None:
    """``label`` minus ``reference`` seed by seed (None without a shared seed)."""
    mine = {r["seed"]: r for r in records if r["label"] == label}
    theirs = {r["seed"]: r for r in records if r["label"] == reference}
    seeds = tuple(sorted(set(mine) & set(theirs)))
    if not seeds or label == reference:
        return None
    width = min(mine[seeds[0]]["trimap"], key=int)
    scores = {
        "miou": lambda r: r["mIoU"],
        "trimap": lambda r: r["trimap"][width],
    }
    differences, clear = {}, {}
    for key, score in scores.items():
        differences[key] = tuple(score(mine[s]) - score(theirs[s]) for s in seeds)
        spread = max(_mean_std([score(r) for r in rows.values()])[1] for rows in (mine, theirs))
        clear[key] = len(seeds) > 1 and _clear(differences[key], spread)
    return Paired(
        reference=reference,
        seeds=seeds,
        miou=differences["miou"],
        trimap=differences["trimap"],
        clear_miou=clear["miou"],
        clear_trimap=clear["trimap"],
    )


@dataclass(frozen=True)
class StudyRow:
    """One decoder over its seeds: scores as fractions (mean, std), cost, train time, and
    its per-seed differences from the reference row (``paired``; None for that row)."""

    label: str
    model: str
    seeds: int
    miou: float
    miou_std: float
    trimap: dict[str, float]
    trimap_std: dict[str, float]
    thin_iou: dict[str, float]
    seconds_per_iter: float
    cost: DecoderCost
    paired: Paired | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(
    records: Sequence[dict[str, Any]],
    *,
    costs: dict[str, DecoderCost],
    thin_classes: Sequence[str] = ("line", "ring", "dot"),
) -> list[StudyRow]:
    """One row per label of ``records`` (run results), in the order labels first appear."""
    rows = []
    for label in dict.fromkeys(r["label"] for r in records):
        runs = [r for r in records if r["label"] == label]
        miou, miou_std = _mean_std([r["mIoU"] for r in runs])
        trimap, trimap_std = {}, {}
        for width in runs[0]["trimap"]:
            trimap[width], trimap_std[width] = _mean_std([r["trimap"][width] for r in runs])
        thin = {
            name: statistics.fmean(r["IoU"][name] or 0.0 for r in runs)
            for name in thin_classes
            if name in runs[0]["IoU"]
        }
        iters = runs[0]["config"]["train"]["iters"]
        rows.append(
            StudyRow(
                label=label,
                model=runs[0]["model"],
                seeds=len(runs),
                miou=miou,
                miou_std=miou_std,
                trimap=trimap,
                trimap_std=trimap_std,
                thin_iou=thin,
                seconds_per_iter=statistics.fmean(r["train_seconds"] for r in runs) / iters,
                cost=costs[runs[0]["model"]],
                paired=paired_differences(records, label),
            )
        )
    return rows


def study_runs(labels: Sequence[str], *, seeds: Sequence[int]) -> list[Run]:
    """The runs of a study, seed by seed (every label of a seed before the next seed).

    Raises:
        ValueError: a label that is not a study label (:data:`STUDY_MODELS`), with a hint
            when it is a zoo model's name.
    """
    unknown = [label for label in labels if label not in STUDY_MODELS]
    if unknown:
        zoo = {model: label for label, (model, _, _) in STUDY_MODELS.items()}
        hint = (
            f" ({unknown[0]} is the zoo model of the study label {zoo[unknown[0]]})"
            if unknown[0] in zoo
            else did_you_mean(unknown[0], STUDY_MODELS)
        )
        raise ValueError(
            f"unknown decoder(s) {unknown}{hint}; choose from {', '.join(STUDY_MODELS)}"
        )
    return [
        Run(
            label=label,
            model=STUDY_MODELS[label][0],
            options=STUDY_OPTIONS.get(label, {}),
            seed=seed,
        )
        for seed in seeds
        for label in labels
    ]


def run_study(
    labels: Sequence[str],
    *,
    seeds: Sequence[int],
    budget: Budget,
    out: str | Path,
    latency_size: Sequence[int],
    latency_repeats: int,
    progress: bool = True,
    say: Callable[[str], None] = print,
    device: str | None = None,
) -> list[StudyRow]:
    """Train (or read) every label x seed run under ``out``, then cost the decoders.

    Runs go seed by seed, so that an interrupted study already has every decoder's first
    seeds; finished runs are read back, an interrupted one resumes. ``device``: where
    the runs train (default: CUDA if available).
    """
    runs = study_runs(labels, seeds=seeds)
    records = []
    cache = FrozenBackboneCache() if budget.cache_backbone else None
    for number, run in enumerate(runs, 1):
        say(f"[{number}/{len(runs)}] {run.key}: {STUDY_MODELS[run.label][2]} ({run.model})")
        records.append(execute(run, budget, out=out, progress=progress, device=device, cache=cache))
    say(f"timing the decoders at ResNet-50 widths, {latency_size[0]} x {latency_size[1]} ...")
    costs = decoder_costs(
        list(dict.fromkeys(STUDY_MODELS[label][0] for label in labels)),
        latency_size=latency_size,
        repeats=latency_repeats,
    )
    return aggregate(records, costs=costs, thin_classes=budget.thin_classes)


def _pm(mean: float, std: float, seeds: int) -> str:
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if seeds > 1 else "")


def study_table(rows: Sequence[StudyRow], *, latency_size: Sequence[int]) -> str:
    """Markdown: scores in % (mean ± std over seeds), decoder cost, training speed."""
    widths = list(rows[0].trimap)
    thin = list(rows[0].thin_iou)
    size = f"{latency_size[0]}x{latency_size[1]}"
    header = (
        ["decoder", "mIoU"]
        + [f"trimap {w} px" for w in widths]
        + [f"IoU {name}" for name in thin]
        + ["GMACs (dec.)", "params (M, dec.)", f"ms (dec., {size})", "train s/it"]
    )
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        cells = [f"`{row.label}`", _pm(row.miou, row.miou_std, row.seeds)]
        cells += [_pm(row.trimap[w], row.trimap_std[w], row.seeds) for w in widths]
        cells += [f"{100 * row.thin_iou[name]:.1f}" for name in thin]
        cells += [
            f"{row.cost.gmacs:.2f}",
            f"{row.cost.params:.2f}",
            f"{row.cost.latency_ms:.0f}",
            f"{row.seconds_per_iter:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(rows: Sequence[StudyRow]) -> str:
    """Markdown: each row minus the reference, per seed and on average, in points; a bold
    mean is beyond the seed spread (:class:`Paired`). Empty without a reference row."""
    paired = [row for row in rows if row.paired is not None]
    if not paired:
        return ""
    width = min(paired[0].trimap, key=int)
    seeds = ", ".join(map(str, paired[0].paired.seeds))
    lines = [
        f"| decoder | vs | mIoU, per seed ({seeds}) | mean | trimap {width} px, per seed | mean |",
        "|---|---|---|---:|---|---:|",
    ]

    def cells(values: Sequence[float], clear: bool) -> list[str]:
        mean = f"{100 * statistics.fmean(values):+.1f}"
        return [", ".join(f"{100 * v:+.1f}" for v in values), f"**{mean}**" if clear else mean]

    for row in paired:
        diff = row.paired
        line = [f"`{row.label}`", f"`{diff.reference}`"]
        line += cells(diff.miou, diff.clear_miou) + cells(diff.trimap, diff.clear_trimap)
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def study_plot(rows: Sequence[StudyRow], *, title: str) -> bytes:
    """Accuracy vs decoder GMACs (Fig. 2a) at the narrowest trimap width, and the NRD
    variants beside NRD itself."""
    width = min(rows[0].trimap, key=int)
    groups = {label: group for label, (_, group, _) in STUDY_MODELS.items()}
    points = [
        CostPoint(
            label=row.label,
            gmacs=row.cost.gmacs,
            miou=100 * row.miou,
            miou_spread=100 * row.miou_std,
            trimap=100 * row.trimap[width],
            trimap_spread=100 * row.trimap_std[width],
            group=groups.get(row.label, "other"),
        )
        for row in rows
    ]
    decoders = [p for p in points if p.group != "NRD variant"]
    variants = [p for p in points if p.group in ("NRD", "NRD variant")]
    return study_figure(decoders, variants, trimap_width=int(width), title=title)


def write_report(
    rows: Sequence[StudyRow],
    directory: str | Path,
    *,
    header: str,
    title: str,
    latency_size: Sequence[int],
) -> Path:
    """``study.md`` (header, table, paired differences), ``study.json`` and ``study.png``
    (``title`` on top)."""
    directory = Path(directory)
    table = study_table(rows, latency_size=latency_size)
    paired = paired_table(rows)
    text = f"{header}\n\n{table}\n" + (f"\nPaired differences:\n\n{paired}\n" if paired else "")
    atomic_write_bytes(directory / "study.md", text.encode())
    records = [row.as_dict() for row in rows]
    atomic_write_bytes(directory / "study.json", json.dumps(records, indent=1).encode())
    atomic_write_bytes(directory / "study.png", study_plot(rows, title=title))
    return directory
