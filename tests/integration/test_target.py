"""Auditing one model trained outside miaudit (``target:``; issue 18).

The targets here are trained by a plain PyTorch loop inside the test on tiny synthetic data
(300 members, a small MLP), saved with safetensors / torch.save / ONNX, and audited through
``miaudit.pipeline.run.run_audit`` with four references. Each test could fail: a leaking target must
be found, a target that never saw the members must not be, declaring the files the other way
round must flip the threshold attacks exactly, and the target mode must agree with pool mode.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from miaudit.cli import main
from miaudit.pipeline.configure import load_config
from miaudit.data import load_dataset
from miaudit.errors import BelowChanceWarning
from miaudit.io import load_npy, read_json, save_weights
from miaudit.models import build_model
from miaudit.pipeline.run import run_audit

N_FEATURES, N_CLASSES = 60, 5
MODEL = ["model.name=mlp", "model.params.hidden=[64]"]
RECIPE = ["train.epochs=30", "train.lr=0.003", "train.batch_size=64"]
THRESHOLD_ATTACKS = ("loss", "confidence", "entropy", "modified-entropy", "label-only-gap")


def train_plain(x: np.ndarray, y: np.ndarray, seed: int, epochs: int = 30) -> torch.nn.Module:
    """A plain PyTorch training loop, nothing from miaudit but the architecture's definition."""
    torch.manual_seed(seed)
    model = build_model("mlp", {"hidden": [64]}, (N_FEATURES,), N_CLASSES)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=g).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Three disjoint record files (members, non-members, third) and targets trained on members / third."""
    d = tmp_path_factory.mktemp("target")
    ds = load_dataset("synthetic-purchase", {"n_records": 1400, "n_features": N_FEATURES, "n_classes": N_CLASSES,
                                             "n_parents": 3, "planted_fraction": 0.05}, None, 0)
    perm = np.random.default_rng(7).permutation(len(ds))
    parts = {"members": perm[:300], "non_members": perm[300:1000], "third": perm[1000:1300]}
    out = {}
    for name, rows in parts.items():
        np.savez(d / f"{name}.npz", x=ds.x[rows], y=ds.y[rows])
        out[name] = d / f"{name}.npz"
    torch.set_num_threads(1)
    target = train_plain(ds.x[parts["members"]], ds.y[parts["members"]], seed=1)
    save_weights(d / "target.safetensors", target.state_dict())
    out["target"] = d / "target.safetensors"
    torch.save(target.state_dict(), d / "target.pt")
    out["target_pt"] = d / "target.pt"
    torch.save(target, d / "model_object.pt")  # a whole pickled module: must be refused
    out["model_object"] = d / "model_object.pt"
    never = train_plain(ds.x[parts["third"]], ds.y[parts["third"]], seed=2)
    save_weights(d / "never.safetensors", never.state_dict())
    out["never"] = d / "never.safetensors"
    out["model"] = target
    # the generator's planted atypical records among the members, by row of the members file (data.planted)
    kinds = ds.planted[parts["members"]]
    (d / "planted.csv").write_text("id,kind\n" + "".join(f"{i},{k}\n" for i, k in enumerate(kinds) if k))
    out["planted"] = d / "planted.csv"
    return out


def target_overrides(files: dict, weights: Path, *, members: str = "members", non_members: str = "non_members",
                     references: str = "online", audit: int = 600, population: int = 300, test: int = 100,
                     analysis: bool = False) -> list[str]:
    return [
        *MODEL, *RECIPE, "pool.n_models=4", "runtime.threads=1", "audit.bootstrap=200",
        f"analysis.vulnerability={str(analysis).lower()}",
        f"data.splits.audit={audit}", f"data.splits.population={population}", "data.splits.validation=0",
        f"data.splits.test={test}",
        f"target.weights={weights}", f"target.references={references}",
        "target.members.name=npz", f"target.members.params.path={files[members]}",
        f"target.members.params.n_classes={N_CLASSES}",
        "target.non_members.name=npz", f"target.non_members.params.path={files[non_members]}",
        f"target.non_members.params.n_classes={N_CLASSES}",
    ]


def best(results: dict) -> str:
    return results["target"]["identifiable"]["attack"]


@pytest.fixture(scope="module")
def leaking(files, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("runs") / "leaking"
    o = [*target_overrides(files, files["target"], analysis=True), f"data.planted={files['planted']}",
         "defences=[logit-reweighting]"]
    return run_audit(load_config(None, o), out), out


def test_finds_the_leak_of_a_model_trained_outside(leaking) -> None:
    res, out = leaking
    name = best(res)
    lo, _ = res["attacks"][name]["ci95"]["auc"]
    assert lo > 0.5, (name, res["attacks"][name]["auc"], lo)
    assert res["target"]["identifiable"]["above_chance"] is True
    assert res["target"]["n_references"] == 4 and res["pool"]["targets"] == [4]
    assert {"lira-online-fixed", "rmia-online", "qmia"} <= set(res["attacks"])
    # the one-model wording and the accuracy comparison with the references
    summary = (out / "summary.txt").read_text()
    assert "of your 300 audited training records are identifiable at 1% FPR" in summary
    assert "more than chance explains" in summary
    acc = res["target"]["accuracy"]
    assert acc["target"]["train_acc"] > 0.95 and "test_acc" in acc["references"]
    # every flagged record is named by its file and row; rows point at the right record
    rows = (out / "vulnerable_records.csv").read_text().splitlines()
    assert rows[0].startswith("origin,member,flagged,record_id,label")
    origins = [r.split(",")[0] for r in rows[1:]]
    assert len(origins) == 600 and sum(o.startswith("members:") for o in origins) == 300
    assert all(o.split(":")[0] in ("members", "non_members") for o in origins)
    # each audited record is IN for exactly half of the references (balanced per record)
    in_mask = load_npy(out / "signals" / "in_mask.npy")
    assert in_mask.shape == (4, 600) and (in_mask.sum(0) == 2).all()
    assert "training records are identifiable at 1% FPR" in (out / "report.html").read_text()


def test_vulnerable_records_of_the_target_are_its_outliers(leaking) -> None:
    """The per-record analysis runs for the one target: its flagged set (members above the α-threshold of
    its non-members) is the headline's count, far above chance, and enriched in the generator's planted
    atypical records; the references (where a record is OUT) measure it as atypical."""
    import csv

    res, out = leaking
    v, found = res["vulnerability"], res["target"]["identifiable"]
    assert v["attack"] == found["attack"] and v["n_targets"] == 1
    assert v["set_size"] == found["n_identifiable"] > 3 * found["chance_expected"]
    assert v["chance_method"] == "bootstrap" and v["distinguishable_from_chance"] is True
    assert v["chance_expected"] == pytest.approx(0.01 * 300)
    with open(out / "vulnerable_records.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    vul = [r for r in rows if r["vulnerable"] == "1"]
    assert len(vul) == v["set_size"] and all(r["member"] == "1" and r["origin"].startswith("members:") for r in vul)
    assert [r["origin"] for r in rows[: len(vul)]] == [r["origin"] for r in vul]  # most exposed first
    # outlier evidence from the references that never saw the record
    for name in ("centroid_distance", "lof", "memorisation"):
        assert v["statistics"][name]["auroc_vs_rest"] > 0.65, (name, v["statistics"][name]["auroc_vs_rest"])
    assert v["statistics"]["confidence_out"]["auroc_vs_rest"] < 0.35  # low confidence = atypical
    # the planted records (data.planted: rows of the members file) are over-represented in the set
    kinds = v["enrichment"]["kinds"]
    assert kinds["all-planted"]["n_audited"] > 0 and kinds["all-planted"]["enrichment"] > 2, kinds["all-planted"]
    assert {r["planted"] for r in rows if r["origin"].startswith("non_members:")} == {""}
    assert {"figures/deciles.png", "figures/tsne.png"} <= set(v["figures"])
    assert all((out / f).is_file() for f in v["figures"])
    html = (out / "report.html").read_text()
    assert 'id="vulnerable"' in html and vul[0]["origin"] in html
    assert "vulnerable records" in (out / "summary.txt").read_text()
    # online references: the inference-time defences are evaluated on the target
    assert res["defences"]["logit-reweighting"]["attackers"]


def test_reanalysing_a_target_audit_says_how(leaking, capsys) -> None:
    """`miaudit analyze` rebuilds a pool run's inputs; a target audit's come from target:, so it refuses in one line."""
    _, out = leaking
    before = (out / "results.json").read_bytes()
    capsys.readouterr()
    assert main(["analyze", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("miaudit: error: ") and "re-run `miaudit run`" in err[0], err
    assert (out / "results.json").read_bytes() == before


# 13 attacks on 300 + 300 records of a model that saw neither file: an interval or two may fall just
# under 0.5 by chance; the warning that names it is tested in the swapped-files test
@pytest.mark.filterwarnings("ignore::miaudit.errors.BelowChanceWarning")
def test_no_false_alarm_on_a_model_that_never_saw_the_members(files, leaking, tmp_path) -> None:
    _, leak_dir = leaking
    out = tmp_path / "never"
    shutil.copytree(leak_dir, out)  # same records and recipe: the references are reused, only the target changes
    # runtime.threads=auto (the default) as in a pool run; it once reached torch.set_num_threads as a string
    res = run_audit(load_config(None, [*target_overrides(files, files["never"], analysis=True), "runtime.threads=auto"]),
                    out)
    assert read_json(out / "run.json")["thread_choice"]["setting"] == "auto"
    for name in {best(res), "loss", "lira-online-fixed"}:
        r = res["attacks"][name]
        lo, hi = r["ci95"]["auc"]
        assert lo <= 0.5 <= hi, (name, r["auc"], lo, hi)
        tlo, thi = r["ci95"]["tpr_at_fpr"]["0.01"]
        assert tlo <= 0.01 <= thi, (name, r["tpr_at_fpr"]["0.01"], tlo, thi)
    assert res["target"]["identifiable"]["above_chance"] is False
    assert "not distinguishable from chance" in (out / "summary.txt").read_text()
    # the per-record analysis uses the same chance rule: its flagged set is within chance too
    v = res["vulnerability"]
    assert v["chance_method"] == "bootstrap" and v["distinguishable_from_chance"] is False
    assert v["attack"] == best(res) and v["set_size"] == res["target"]["identifiable"]["n_identifiable"]
    # the references were reused: same fingerprint, no retraining recorded
    assert read_json(out / "run.json")["target_sha256"] != read_json(leak_dir / "run.json")["target_sha256"]


def test_offline_references_use_every_reference_and_find_the_leak(files, tmp_path) -> None:
    """Offline references never hold an audited record: every one of them is an OUT reference of
    every record (none is set aside to balance the sides), and the offline attacks find the leak."""
    o = [*target_overrides(files, files["target"], references="offline", analysis=True), "analysis.tsne=false",
         "defences=[logit-reweighting]"]
    res = run_audit(load_config(None, o), tmp_path / "off")
    in_mask = load_npy(tmp_path / "off" / "signals" / "in_mask.npy")
    assert in_mask.shape == (4, 600) and not in_mask.any()
    assert {"lira-offline-fixed", "rmia-offline"} <= set(res["attacks"])
    assert not {"lira-online", "lira-online-fixed", "rmia-online"} & set(res["attacks"])
    lo, _ = res["attacks"]["rmia-offline"]["ci95"]["auc"]
    assert lo > 0.5, res["attacks"]["rmia-offline"]["auc"]
    # the analysis measures records by the (all OUT) references; memorisation needs IN ones: skipped, with why
    v = res["vulnerability"]
    assert "memorisation" in v["skipped_measures"] and "memorisation" not in v["statistics"]
    assert {"centroid_distance", "lof", "confidence_out"} <= set(v["statistics"])
    assert "defences" not in res and any("references: offline" in n for n in res["target"]["notes"])


def test_swapped_labels_flip_threshold_attacks_exactly(files, tmp_path) -> None:
    runs = {}
    for tag, (mem, non) in {"plain": ("members", "third"), "swapped": ("third", "members")}.items():
        o = target_overrides(files, files["target"], members=mem, non_members=non, references="none",
                             audit=600, population=0, test=1, analysis=tag == "plain")
        if tag == "swapped":  # the files declared the wrong way round: a below-chance audit, and it is named
            with pytest.warns(BelowChanceWarning, match="broken setup"):
                runs[tag] = run_audit(load_config(None, o), tmp_path / tag)
        else:
            runs[tag] = run_audit(load_config(None, o), tmp_path / tag)
    assert any("below chance" in w for w in runs["swapped"]["warnings"])
    for name in THRESHOLD_ATTACKS[:4]:
        a, b = runs["plain"]["attacks"][name]["auc"], runs["swapped"]["attacks"][name]["auc"]
        assert a > 0.52  # a real leak, so the flip is not 0.5 mapped to itself
        assert b == pytest.approx(1.0 - a, abs=1e-12), name
    assert runs["plain"]["target"]["n_references"] == 0
    v = runs["plain"]["vulnerability"]  # no reference: the flagged set and its chance control, no outlier measure
    assert set(v["skipped_measures"]) == {"centroid_distance", "knn_disagreement", "lof", "confidence_out",
                                          "margin_out", "memorisation"} and v["statistics"] == {}
    assert v["set_size"] == runs["plain"]["target"]["identifiable"]["n_identifiable"]
    assert all(r["knowledge"] == "none" for r in runs["plain"]["attacks"].values())


def test_agrees_with_pool_mode(tmp_path) -> None:
    """Member 0 of a pool, exported and audited as a target against references of the same recipe."""
    data = ["data.params.n_records=1400", f"data.params.n_features={N_FEATURES}", f"data.params.n_classes={N_CLASSES}",
            "data.params.n_parents=3", "data.params.planted_fraction=0.05", "data.splits.audit=600",
            "data.splits.population=300", "data.splits.validation=0", "data.splits.test=100"]
    common = [*MODEL, *RECIPE, "pool.n_models=4", "runtime.threads=1", "audit.bootstrap=200",
              "analysis.vulnerability=false"]
    pool_dir = tmp_path / "pool"
    # a pool of 6: member 0's 5 references hold 2 or 3 IN models per record; the target audit's 4 hold 2 and 2
    pool = run_audit(load_config(None, [*data, *common, "pool.n_models=6", "audit.targets=[0]",
                                        "audit.attacks=[lira-online-fixed,qmia]"]), pool_dir)
    assert "qmia" not in pool["skipped_attacks"] and 0.5 < pool["attacks"]["qmia"]["auc"] < 1  # opt-in in pool runs
    cfg = load_config(None, [*data, *common])
    ds = load_dataset(cfg.data.name, cfg.data.params, None, 0)
    with np.load(pool_dir / "splits.npz") as z:
        audit, population, test = z["audit"], z["population"], z["test"]
    inside = load_npy(pool_dir / "signals" / "in_mask.npy")[0]
    np.savez(tmp_path / "m.npz", x=ds.x[audit[inside]], y=ds.y[audit[inside]])
    non = np.concatenate([audit[~inside], population, test])
    np.savez(tmp_path / "n.npz", x=ds.x[non], y=ds.y[non])
    files = {"members": tmp_path / "m.npz", "non_members": tmp_path / "n.npz"}
    n_in = int(inside.sum())
    o = target_overrides(files, pool_dir / "models" / "member_000.safetensors", audit=2 * n_in, population=300, test=100)
    res = run_audit(load_config(None, [*o, "audit.attacks=[lira-online-fixed]"]), tmp_path / "target")
    lo, hi = pool["attacks"]["lira-online-fixed"]["ci95"]["auc"]
    got = res["attacks"]["lira-online-fixed"]["auc"]
    assert lo <= got <= hi, (got, lo, hi, pool["attacks"]["lira-online-fixed"]["auc"])


# torch's TorchScript ONNX exporter warns that it is legacy; the new one needs onnxscript, not an extra of ours
@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning")
def test_onnx_target_gives_the_same_audit(files, leaking, tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
    pytest.importorskip("onnx", reason="torch.onnx.export needs the onnx package ([onnx] extra)")
    path = tmp_path / "target.onnx"
    torch.onnx.export(files["model"], (torch.zeros(1, N_FEATURES),), str(path), input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, dynamo=False)
    res_pt, _ = leaking
    out = tmp_path / "onnx"
    shutil.copytree(leaking[1], out)
    res = run_audit(load_config(None, target_overrides(files, path, analysis=True)), out)
    for name in ("loss", "lira-online-fixed", "rmia-online"):
        assert res["attacks"][name]["auc"] == pytest.approx(res_pt["attacks"][name]["auc"], abs=2e-3), name
    assert "ONNX" in res["vulnerability"]["skipped_figures"]["tsne.png"]  # no penultimate features to map
    bad = tmp_path / "wide.onnx"
    wide = torch.nn.Sequential(torch.nn.Linear(N_FEATURES + 1, N_CLASSES))
    torch.onnx.export(wide, (torch.zeros(1, N_FEATURES + 1),), str(bad), input_names=["x"], dynamo=False)
    with pytest.raises(Exception, match="expects inputs of shape"):
        run_audit(load_config(None, target_overrides(files, bad)), tmp_path / "bad")


def test_pt_state_dict_is_accepted_and_same_as_safetensors(files, tmp_path) -> None:
    from miaudit.pipeline.target import load_target

    cfg = load_config(None, target_overrides(files, files["target_pt"]))
    a = load_target(cfg, (N_FEATURES,), N_CLASSES)
    b = files["model"]
    x = torch.randn(5, N_FEATURES)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


# --- bad input: one line, exit 2, nothing written ------------------------------------------------


def _cli(capsys, overrides: list[str], out: Path, *expected: str) -> None:
    capsys.readouterr()
    code = main(["run", "--out", str(out), "-q", *[a for o in overrides for a in ("--set", o)]])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("miaudit: error: "), err
    for part in expected:
        assert part in lines[0], (part, lines[0])
    assert not out.exists(), "nothing may be written on bad input"


def test_bad_input(files, tmp_path, capsys) -> None:
    d = tmp_path
    # keys that do not fit the architecture: the first mismatch is named
    wrong = build_model("mlp", {"hidden": [32]}, (N_FEATURES,), N_CLASSES).state_dict()
    save_weights(d / "narrow.safetensors", wrong)
    _cli(capsys, target_overrides(files, d / "narrow.safetensors"), d / "o1", "has shape", "expects")
    renamed = {"x." + k: v for k, v in files["model"].state_dict().items()}
    save_weights(d / "renamed.safetensors", renamed)
    _cli(capsys, target_overrides(files, d / "renamed.safetensors"), d / "o2", "no tensor")
    # output size differs from the data's classes
    more = build_model("mlp", {"hidden": [64]}, (N_FEATURES,), N_CLASSES + 2).state_dict()
    save_weights(d / "more.safetensors", more)
    _cli(capsys, target_overrides(files, d / "more.safetensors"), d / "o3", f"the data has {N_CLASSES} classes")
    # a whole pickled module is refused (never unpickled)
    _cli(capsys, target_overrides(files, files["model_object"]), d / "o4", "not a plain state_dict")
    # members and non-members with different feature shapes
    np.savez(d / "wide.npz", x=np.zeros((20, N_FEATURES + 1), np.float32), y=np.zeros(20, np.int64))
    _cli(capsys, [*target_overrides(files, files["target"]), f"target.non_members.params.path={d / 'wide.npz'}"],
         d / "o5", "feature shape")
    # an empty file
    np.savez(d / "empty.npz", x=np.zeros((0, N_FEATURES), np.float32), y=np.zeros(0, np.int64))
    _cli(capsys, [*target_overrides(files, files["target"]), f"target.members.params.path={d / 'empty.npz'}"],
         d / "o6", "empty.npz")
    # weights that are not there, and an unknown format
    _cli(capsys, target_overrides(files, d / "missing.safetensors"), d / "o7", "not found")
    (d / "w.bin").write_bytes(b"x")
    _cli(capsys, target_overrides(files, d / "w.bin"), d / "o8", "unknown format")


def test_duplicates_between_the_files_are_reported_and_dropped(files, tmp_path) -> None:
    from miaudit.pipeline.data import target_records

    with np.load(files["members"]) as m, np.load(files["non_members"]) as n:
        x = np.concatenate([n["x"], m["x"][:7]])
        y = np.concatenate([n["y"], m["y"][:7]])
    np.savez(tmp_path / "dup.npz", x=x, y=y)
    o = [*target_overrides(files, files["target"]), f"target.non_members.params.path={tmp_path / 'dup.npz'}"]
    rec = target_records(load_config(None, o))
    assert rec.n_duplicates == 7
    assert (~rec.member).sum() == len(y) - 7
    audited = rec.origins[rec.splits.audit]
    assert len(set(audited)) == len(audited) == 600
    # the origin names the record's row in its file
    i = int(np.flatnonzero(np.char.startswith(audited.astype(str), "members:"))[0])
    row = int(audited[i].split(":")[1])
    with np.load(files["members"]) as m:
        np.testing.assert_array_equal(rec.dataset.x[rec.splits.audit[i]], m["x"][row])


def test_target_architecture_may_differ_from_the_references(files, tmp_path) -> None:
    """``target.model`` builds the target; ``model`` stays the references' architecture."""
    from miaudit.errors import TargetError
    from miaudit.pipeline.target import load_target

    narrow = build_model("mlp", {"hidden": [32]}, (N_FEATURES,), N_CLASSES)
    save_weights(tmp_path / "narrow.safetensors", narrow.state_dict())
    o = target_overrides(files, tmp_path / "narrow.safetensors")
    cfg = load_config(None, [*o, "target.model.name=mlp", "target.model.params.hidden=[32]"])
    assert cfg.model.params["hidden"] == [64]
    x = torch.randn(3, N_FEATURES)
    with torch.no_grad():
        assert torch.equal(load_target(cfg, (N_FEATURES,), N_CLASSES)(x), narrow(x))
    with pytest.raises(TargetError, match="'body.1.weight' has shape"):
        load_target(load_config(None, o), (N_FEATURES,), N_CLASSES)


def test_onnx_without_onnxruntime_says_how_to_install(files, tmp_path, monkeypatch) -> None:
    import sys

    from miaudit.errors import TargetError
    from miaudit.pipeline.target import load_target

    (tmp_path / "m.onnx").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as when the extra is missing
    cfg = load_config(None, target_overrides(files, tmp_path / "m.onnx"))
    with pytest.raises(TargetError, match=r"pip install 'miaudit\[onnx\]'"):
        load_target(cfg, (N_FEATURES,), N_CLASSES)
