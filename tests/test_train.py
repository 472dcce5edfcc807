"""The trainer on tiny synthetic data: learning, outputs, resume after kill -9, DDP, ONNX export."""

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, face_like, int8_weight_range, jpeg_bytes, synthetic_split_folders, write_tree
from emoscope.train import TrainConfig

PY = sys.executable
pytestmark = pytest.mark.slow  # every test here trains (except the config check, which is cheap anyway)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tree(str(tmp_path_factory.mktemp("data") / "tiny"), synthetic_split_folders(60, splits=("train", "val", "test")))


def run_cli(*args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([PY, "-m", "emoscope.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, **kw)


def test_trainer_learns_and_writes_everything(tiny_data, tmp_path):
    from emoscope.train.trainer import Trainer
    cfg = TrainConfig(data=tiny_data, out=str(tmp_path / "run"), model="cnn_small", epochs=4, batch_size=32, lr=0.05,
                      schedule="cosine", warmup_epochs=0.5, threads=2, ema=0.9)
    history = Trainer(cfg, progress=False).fit()
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert max(h["val_acc"] for h in history) > 0.6  # 3 classes: chance is 0.33
    for name in ("config.json", "history.json", "history.csv", "last.pt", "best.pt", "summary.json"):
        assert os.path.exists(tmp_path / "run" / name), name
    saved = TrainConfig.load(str(tmp_path / "run" / "config.json"))
    assert saved.model == "cnn_small" and saved.epochs == 4
    with pytest.raises(FileExistsError):
        Trainer(cfg, progress=False).fit()


@pytest.mark.parametrize("opts", [
    dict(optimizer="adamw", lr=3e-3, schedule="onecycle", balance="weights"),
    dict(schedule="plateau", balance="sampler", ema=0.0, bf16=False, channels_last=False),
])
def test_trainer_options(tiny_data, tmp_path, opts):
    from emoscope.train.trainer import Trainer
    cfg = TrainConfig(data=tiny_data, out=str(tmp_path / "run"), model="cnn_small", epochs=2, batch_size=32,
                      threads=2, **opts)
    cfg.augment.mixup, cfg.augment.cutmix = 0.2, 0.2
    history = Trainer(cfg, progress=False).fit()
    assert len(history) == 2 and np.isfinite(history[-1]["train_loss"])


def test_resume_after_kill_keeps_every_epoch_once(tiny_data, tmp_path):
    out = str(tmp_path / "run")
    args = ["train", "--data", tiny_data, "--model", "resnet_fer_s", "--epochs", "5", "--batch-size", "16",
            "--out", out, "--threads", "1", "--resume"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([PY, "-m", "emoscope.cli", *args], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    hist = os.path.join(out, "history.json")
    deadline = time.time() + 120
    while time.time() < deadline and not os.path.exists(hist):
        time.sleep(0.1)
    time.sleep(0.6)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(json.load(open(hist)))
    assert 1 <= done_before < 5
    result = run_cli(*args, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resumed" in result.stderr
    epochs = [h["epoch"] for h in json.load(open(hist))]
    assert epochs == [1, 2, 3, 4, 5]


def test_ddp_two_cpu_processes_agree(tiny_data, tmp_path):
    out = str(tmp_path / "ddp")
    torchrun = os.path.join(os.path.dirname(PY), "torchrun")
    cmd = [torchrun, "--nproc_per_node=2", "--master_port=29517", "-m", "emoscope.cli", "train", "--data", tiny_data,
           "--model", "cnn_small", "--epochs", "1", "--batch-size", "16", "--out", out, "--threads", "1"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = (json.load(open(os.path.join(out, f"rank{r}.json"))) for r in (0, 1))
    assert r0["world"] == 2
    assert r0["param_checksum"] == pytest.approx(r1["param_checksum"], rel=1e-6)
    assert r0["last"]["val_acc"] == r1["last"]["val_acc"]


def test_export_onnx_roundtrip(tiny_data, tmp_path):
    from emoscope.runtime import ExpressionClassifier
    from emoscope.train.trainer import Trainer
    from emoscope.export.onnx import export_onnx
    cfg = TrainConfig(data=tiny_data, out=str(tmp_path / "run"), model="resnet_fer_s", epochs=1, batch_size=32,
                      threads=2)
    Trainer(cfg, progress=False).fit()
    report = export_onnx(cfg.out, str(tmp_path / "m.onnx"), int8=str(tmp_path / "m8.onnx"))
    assert report["max_abs_diff"] < 1e-3 and report["opset"] >= 17 and report["temperature"] > 0
    assert report["int8"]["bytes"] < 0.5 * report["bytes"]
    assert int8_weight_range(str(tmp_path / "m8.onnx")) == (-64, 64)  # 7-bit weights: exact on AVX2-only CPUs
    half = export_onnx(cfg.out, str(tmp_path / "h.onnx"), fp16_weights=True)  # weights stored as fp16
    assert half["fp16_weights"]["bytes"] < 0.55 * report["bytes"] and half["fp16_weights"]["max_abs_diff"] < 1e-2
    assert ExpressionClassifier(str(tmp_path / "h.onnx")).meta.temperature == round(half["temperature"], 4)  # metadata kept
    q = ExpressionClassifier(str(tmp_path / "m8.onnx"))
    assert q.classes == ExpressionClassifier(str(tmp_path / "m.onnx")).classes
    clf = ExpressionClassifier(str(tmp_path / "m.onnx"))
    assert clf.classes[:7] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    assert clf.meta.input_size == (48, 48) and clf.meta.color == "gray"
    probs = clf.predict(np.zeros((5, 48, 48), np.uint8))
    assert probs.shape == (5, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_evaluate_run_and_onnx_with_report(tiny_data, tmp_path):
    from emoscope.evaluate.evaluator import evaluate
    from emoscope.export.onnx import export_onnx
    from emoscope.train.trainer import Trainer
    cfg = TrainConfig(data=tiny_data, out=str(tmp_path / "run"), model="cnn_small", epochs=2, batch_size=32,
                      threads=2)
    Trainer(cfg, progress=False).fit()
    export_onnx(cfg.out, str(tmp_path / "m.onnx"))
    a = evaluate(cfg.out, None, "test", out=str(tmp_path / "rep"))
    b = evaluate(str(tmp_path / "m.onnx"), tiny_data, "test")
    assert a["n"] == b["n"] == 180
    assert abs(a["accuracy"] - b["accuracy"]) < 0.02  # torch fp32 vs onnxruntime: same predictions
    for name in ("metrics.json", "report.html", "confusion.png", "roc.png", "reliability.png", "mistakes.png",
                 "training.png"):
        assert os.path.getsize(tmp_path / "rep" / name) > 500, name
    flip = evaluate(str(tmp_path / "m.onnx"), tiny_data, "test", tta="flip")
    assert flip["n"] == 180

    # compare: this run and a second one, found by a glob; the test scores match evaluate's
    Trainer(TrainConfig(data=tiny_data, out=str(tmp_path / "run2"), model="cnn_medium", epochs=1, batch_size=32,
                        threads=2), progress=False).fit()
    result = run_cli("compare", str(tmp_path / "run*"), "--out", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr[-2000:]
    import pandas as pd
    df = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert list(df["run"]) == ["run", "run2"] and list(df["epochs"]) == [2, 1]
    assert df.loc[0, "test_acc"] == pytest.approx(a["accuracy"]) and df.loc[0, "test_macro_f1"] == pytest.approx(a["macro_f1"])
    assert (df["latency_ms"] > 0).all() and df.loc[1, "params_m"] > 0
    assert "| run2 | cnn_medium |" in result.stdout
    for name in ("compare.md", "compare.html", "accuracy_vs_params.png", "accuracy_vs_epoch.png"):
        assert os.path.getsize(tmp_path / "cmp" / name) > 300, name
    assert run_cli("compare", str(tmp_path / "nothing*")).returncode != 0


def test_tune_runs_resumes_and_exports_a_config(tiny_data, tmp_path):
    out = str(tmp_path / "tune")
    args = ["tune", "--data", tiny_data, "--out", out, "--trials", "2", "--epochs", "2", "--threads", "1"]
    first = run_cli(*args, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_cli(*args, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    report = json.loads(second.stdout)
    assert report["trials_complete"] + report["trials_pruned"] == 4  # the study continued
    cfg = TrainConfig.load(report["best_config"])
    assert cfg.model == "resnet_fer" and {"width", "depth", "drop"} <= set(cfg.model_kwargs)


def test_frozen_feature_extraction_then_fine_tuning(tiny_data, tmp_path):
    import torch
    from emoscope.train.trainer import Trainer
    cfg = TrainConfig(data=tiny_data, out=str(tmp_path / "run"), model="mobilenet_v2", epochs=2, batch_size=32,
                      threads=2, freeze_epochs=1, ema=0.0)
    trainer = Trainer(cfg, progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train_epoch(0, None)
    after = trainer.model.state_dict()
    assert torch.equal(before["backbone.features.0.0.weight"], after["backbone.features.0.0.weight"])
    assert torch.equal(before["backbone.features.0.1.running_mean"], after["backbone.features.0.1.running_mean"])
    assert not torch.equal(before["head.3.weight"], after["head.3.weight"])
    trainer.train_epoch(1, None)  # stage two: everything learns
    assert not torch.equal(before["backbone.features.0.0.weight"], trainer.model.state_dict()["backbone.features.0.0.weight"])


def test_pretrained_weights_fail_clearly_offline(monkeypatch):
    import torch
    from emoscope.models import create_model

    def offline(*a, **k):
        raise OSError("network is unreachable")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RuntimeError, match="needs internet"):
        create_model("resnet50", pretrained=True)


def test_warm_start_on_train_plus_val_with_a_fraction(tiny_data, tmp_path):
    """Stage two of the default recipe: start from a finished run, fold most of val into train and
    keep a share of it (never trained on) for choosing checkpoints; and the experiments' `train_fraction` keeps a stratified share of train."""
    from emoscope.models.checkpoint import load_run_model, predict_logits
    from emoscope.train.trainer import Trainer
    first = TrainConfig(data=tiny_data, out=str(tmp_path / "a"), model="cnn_small", epochs=2, batch_size=32,
                        threads=2, ema=0.0)
    Trainer(first, progress=False).fit()
    second = TrainConfig(data=tiny_data, out=str(tmp_path / "b"), model="cnn_small", epochs=1, batch_size=32,
                         threads=2, ema=0.0, init=first.out, train_splits=["train", "val"], val_split=0.2, lr=1e-9)
    trainer = Trainer(second, progress=False)
    assert len(trainer.train_set) + len(trainer.val_set) == 2 * 60 * 3  # tiny_data: 60 per class in train and val
    assert len(trainer.val_set) == 36 and set(trainer.val_set.ids) < set(Trainer(first, progress=False).val_set.ids)
    probe = trainer.val_set.images[:8]
    before, _, _ = load_run_model(first.out)
    start = predict_logits(trainer.model, probe, channels_last=False, bf16=False)
    assert np.allclose(start, predict_logits(before, probe, channels_last=False, bf16=False), atol=1e-5)
    trainer.fit()
    third = TrainConfig(data=tiny_data, out=str(tmp_path / "c"), model="cnn_small", train_fraction=0.5, val_split=0.2)
    assert len(Trainer(third, progress=False).train_set) == 90
    with pytest.raises(ValueError, match="not a cnn_medium"):
        Trainer(TrainConfig(data=tiny_data, out=str(tmp_path / "d"), model="cnn_medium", init=first.out), progress=False)


def test_a_gray_run_starts_a_colour_run_as_the_same_function_of_luma(tiny_data, tmp_path):
    """Warm start across colour: the colour network begins by giving on an RGB image exactly what
    the gray network gives on its luma; a colour run cannot start a gray one; the two average into
    a colour network."""
    import torch
    from emoscope.models.checkpoint import load_run_model, normalize
    from emoscope.models.checkpoint import LUMA, gray_to_rgb
    from emoscope.train.trainer import Trainer
    gray = TrainConfig(data=tiny_data, out=str(tmp_path / "gray"), model="resnet_fer_s", epochs=1, batch_size=32,
                       threads=2, ema=0.0)
    Trainer(gray, progress=False).fit()
    colour = Trainer(TrainConfig(data=tiny_data, out=str(tmp_path / "rgb"), model="resnet_fer_s", color="rgb",
                                 epochs=1, batch_size=32, threads=2, ema=0.0, init=gray.out), progress=False)
    rgb = torch.rand(6, 3, 48, 48, generator=torch.Generator().manual_seed(0))
    luma = (rgb * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
    before, _, _ = load_run_model(gray.out)
    colour.model.eval()
    with torch.no_grad():
        assert torch.allclose(colour.model(normalize(rgb)), before.float()(normalize(luma)), atol=1e-4)
        assert not torch.allclose(colour.model(normalize(rgb)), before(normalize(rgb.mean(1, keepdim=True))), atol=1e-2)
    colour.fit()
    with pytest.raises(ValueError, match="a rgb model cannot start a gray one"):
        Trainer(TrainConfig(data=tiny_data, out=str(tmp_path / "back"), model="resnet_fer_s", init=str(tmp_path / "rgb")),
                progress=False)
    # the two average into one colour network: the gray one spread by luma, then the mean
    r = run_cli("average", gray.out, str(tmp_path / "rgb"), "--out", str(tmp_path / "mean"))
    assert r.returncode == 0, r.stderr
    (mean, cfg, _), (after, _, _) = (load_run_model(str(tmp_path / n)) for n in ("mean", "rgb"))
    assert cfg["color"] == "rgb"
    sc = after.float().state_dict()
    sg = gray_to_rgb(before.float().state_dict(), sc)
    for name, value in mean.float().state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, (sg[name] + sc[name]) / 2, atol=1e-6), name


def test_distillation_from_a_teacher_ensemble(tiny_data, tmp_path):
    """Offline distillation: the targets blend the labels with the teachers' averaged,
    flip-averaged probabilities on the clean training images; a mismatched teacher is refused."""
    import torch
    from emoscope.train.cli import add_arguments, resolve
    from emoscope.models.checkpoint import load_run_model, predict_logits
    from emoscope.train.trainer import Trainer
    teachers = []
    for i, model in enumerate(("cnn_small", "cnn_medium")):
        cfg = TrainConfig(data=tiny_data, out=str(tmp_path / f"t{i}"), model=model, epochs=2, batch_size=32,
                          threads=2, ema=0.0, seed=i)
        Trainer(cfg, progress=False).fit()
        teachers.append(cfg.out)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", tiny_data, "--out", str(tmp_path / "s"), "--model", "cnn_small",
                              "--epochs", "2", "--batch-size", "32", "--threads", "2", "--teacher", teachers[0],
                              "--teacher", teachers[1], "--distill", "0.8", "--distill-temperature", "2"])
    student_cfg = resolve(args)
    assert student_cfg.teacher == teachers and student_cfg.distill == 0.8
    student = Trainer(student_cfg, progress=False)
    images = student.train_set.images
    expected = torch.stack([torch.softmax(torch.from_numpy(predict_logits(load_run_model(t)[0], images, flip=True)) / 2, 1)
                            for t in teachers]).mean(0)
    assert student.teacher_probs.shape == (len(images), len(student.classes))
    assert torch.allclose(student.teacher_probs, expected, atol=1e-2)  # bf16 inference
    assert torch.allclose(student.teacher_probs.sum(1), torch.ones(len(images)), atol=1e-5)
    history = student.fit()
    assert len(history) == 2 and np.isfinite(history[-1]["train_loss"])
    rgb = TrainConfig(data=tiny_data, out=str(tmp_path / "r"), model="cnn_small", color="rgb", teacher=teachers[:1])
    with pytest.raises(ValueError, match="teacher .*gray 48px.*, not rgb"):
        Trainer(rgb, progress=False)
    # a 64 px student learns from the 48 px teacher's reading of its images shrunk to 48 px
    larger = Trainer(TrainConfig(data=tiny_data, out=str(tmp_path / "l"), model="cnn_small", img_size=64,
                                 model_kwargs={"size": 64}, teacher=teachers[:1], bf16=False), progress=False)
    big = larger.train_set.images
    assert big.shape[1:3] == (64, 64)
    shrunk = torch.nn.functional.interpolate(torch.from_numpy(big[:, None].astype(np.float32)), size=(48, 48),
                                             mode="bilinear", antialias=True).round().clamp(0, 255)
    seen = predict_logits(load_run_model(teachers[0])[0], shrunk[:, 0].numpy().astype(np.uint8), flip=True)
    assert torch.allclose(larger.teacher_probs, torch.softmax(torch.from_numpy(seen), 1), atol=2e-2)


def test_online_distillation_on_the_augmented_batch(tiny_data, tmp_path):
    """Online distillation: no precomputed probabilities; the teacher (kept in eval mode while the
    student trains) predicts each batch the student sees, and the run trains."""
    import torch
    from emoscope.train.cli import add_arguments, resolve
    from emoscope.train.trainer import Trainer
    teacher = TrainConfig(data=tiny_data, out=str(tmp_path / "t"), model="cnn_small", epochs=1, batch_size=32,
                          threads=2, ema=0.0)
    Trainer(teacher, progress=False).fit()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", tiny_data, "--out", str(tmp_path / "s"), "--model", "cnn_small", "--epochs",
                              "2", "--batch-size", "32", "--threads", "2", "--teacher", teacher.out,
                              "--distill-online", "--distill-temperature", "2"])
    student = Trainer(resolve(args), progress=False)
    assert student.cfg.distill_online and student.teacher_probs is None and len(student.teachers) == 1
    x = torch.randn(8, 1, 48, 48).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = torch.softmax(student.teachers[0](x).float() / 2, 1)
    assert torch.allclose(student.online_teacher_probs(x), expected, atol=1e-6)
    history = student.fit()
    assert len(history) == 2 and np.isfinite(history[-1]["train_loss"])
    assert not student.teachers[0].training
    assert not resolve(parser.parse_args(["--data", tiny_data])).distill_online
    # the same teacher exported to ONNX predicts the same batch through onnxruntime
    from emoscope.export.onnx import export_onnx
    onnx_path = export_onnx(teacher.out, str(tmp_path / "teacher.onnx"))["path"]
    via_onnx = Trainer(TrainConfig(data=tiny_data, out=str(tmp_path / "o"), model="cnn_medium", epochs=1, batch_size=32,
                                   threads=2, teacher=[onnx_path], distill_online=True, bf16=False), progress=False)
    x = x.contiguous()
    assert torch.allclose(via_onnx.online_teacher_probs(x), torch.softmax(student.teachers[0](x), 1), atol=1e-4)
    assert len(via_onnx.fit()) == 1
    # --distill-flip: each teacher's logits are averaged with its view of the mirrored batch
    via_onnx.cfg.distill_flip = True
    mirrored = torch.flip(x, dims=[3])
    flip_logits = (student.teachers[0](x) + student.teachers[0](mirrored)) / 2
    flip_probs = via_onnx.online_teacher_probs(x)
    assert torch.allclose(flip_probs, torch.softmax(flip_logits, 1), atol=1e-4)
    assert torch.allclose(flip_probs, via_onnx.online_teacher_probs(mirrored), atol=1e-5)
    assert resolve(parser.parse_args(["--data", tiny_data, "--distill-flip"])).distill_flip
    with pytest.raises(ValueError, match="teacher .*rgb"):
        Trainer(TrainConfig(data=tiny_data, out=str(tmp_path / "p"), color="rgb", teacher=[onnx_path]), progress=False)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(REPO, "configs", "*", "*.json"))), ids=os.path.basename)
def test_configs_load(path):
    """Every recipe in configs/ parses into a TrainConfig naming a registered model; the files it
    names inside the repository exist; archived recipes are listed in configs/archive/README.md."""
    from emoscope.models import list_models
    cfg = TrainConfig.load(path)
    assert cfg.model in list_models() and cfg.epochs > 0 and cfg.data
    for f in [cfg.exclude] + [s.get("split_file", "") for s in cfg.sources]:
        assert not f or os.path.exists(os.path.join(REPO, f)), f
    if os.sep + "archive" + os.sep in path:
        with open(os.path.join(REPO, "configs", "archive", "README.md")) as f:
            assert os.path.basename(path) in f.read()


def test_primary_only_is_the_recipes_leave_one_source_out_twin(tmp_path):
    """--primary-only leaves the config's other sources out and changes nothing else: the twin that
    issue 40's leave-one-source-out check trains from a shipped or archived recipe."""
    from dataclasses import asdict
    from emoscope.train.cli import add_arguments, resolve
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    path = os.path.join(REPO, "configs", "shipped", "expression-lite0-long.json")
    full = TrainConfig.load(path)
    twin = resolve(parser.parse_args(["--config", path, "--primary-only", "--out", str(tmp_path)]))
    assert [s["data"] for s in full.sources] == ["../shared/datasets/web_faces.zip"] and twin.sources == []

    def rest(cfg: TrainConfig) -> dict:
        return {k: v for k, v in asdict(cfg).items() if k not in ("sources", "out")}
    assert rest(twin) == rest(full) and twin.out == str(tmp_path)
    assert resolve(parser.parse_args(["--config", path])).sources == full.sources


def test_multi_source_training(tiny_data, tmp_path):
    """A second source joins training with its weight and class weights, its own split file and
    no distillation; classes the primary lacks are left out; every source's val is scored."""
    import torch
    from emoscope.data.dataset import load_dataset, write_split_file
    from emoscope.train.trainer import Trainer
    extra = write_tree(str(tmp_path / "extra"), {
        f"{c}/{c}_{i}.png": jpeg_bytes(face_like(ci, 7000 + 100 * ci + i), fmt="PNG")
        for ci, c in enumerate(("angry", "happy", "sad", "contempt")) for i in range(30)})
    split_file = str(tmp_path / "extra.csv")
    counts = write_split_file(load_dataset(extra), split_file, 0.2, 0.2, seed=3)
    assert counts["test"]["angry"] == 6 and counts["val"]["contempt"] == 6
    teacher = TrainConfig(data=tiny_data, out=str(tmp_path / "t"), model="cnn_small", epochs=1, batch_size=32, ema=0.0)
    Trainer(teacher, progress=False).fit()
    cfg = TrainConfig(data=tiny_data, out=str(tmp_path / "m"), model="cnn_small", epochs=2, batch_size=16, ema=0.0,
                      teacher=[teacher.out], distill=1.0, monitor="val_mean",
                      sources=[{"data": extra, "weight": 0.5, "split_file": split_file,
                                "class_weights": {"angry": 4.0}}])
    tr = Trainer(cfg, progress=False)
    assert "contempt" not in tr.classes and [s.name for s in tr.sources] == ["tiny", "extra"]
    assert (tr.train_source == 1).sum() == 54 and len(tr.val_sets[1]) == 18  # contempt left out
    order = tr.epoch_order(0)
    from_extra = tr.train_source[order] == 1
    assert abs(from_extra.mean() - 0.5) < 0.08
    extra_labels = tr.train_set.labels[order[from_extra]]
    assert (extra_labels == 0).mean() > 0.5  # angry drawn 4x as often as happy or sad
    assert tr.distilled[torch.from_numpy(order)].numpy().tolist() == (~from_extra).tolist()
    history = tr.fit()
    assert {"val_acc_extra", "val_mean"} <= set(history[-1])
    assert history[-1]["val_mean"] == pytest.approx((history[-1]["val_acc"] + history[-1]["val_acc_extra"]) / 2,
                                                    abs=1e-4)
    with pytest.raises(ValueError, match="source needs"):
        TrainConfig.from_dict({"data": tiny_data, "sources": [{"data": extra}]})


def test_eye_band_darkens_the_eye_rows_only():
    """The sunglasses augmentation covers the eye rows with a dark band (and only them), on the
    chosen share of the batch; with the affine at rest the mouth and forehead are untouched."""
    import torch
    from emoscope.train.augment import EYE_ROWS, eye_band
    x = torch.full((400, 1, 48, 48), 0.8)
    out = eye_band(x, 0.5, torch.Generator().manual_seed(0))
    changed = (out != x).flatten(1).any(1)
    assert 0.4 < changed.float().mean() < 0.6
    covered = out[changed, 0]
    dark = covered != 0.8
    assert covered[dark].mean() < 0.3 and dark[:, :, 24].any(1).all()
    top, bottom = int((EYE_ROWS[0] - 0.1) * 48), int((EYE_ROWS[1] + 0.1) * 48) + 1
    assert not dark[:, :top].any() and not dark[:, bottom:].any() and not dark[:, :, 0].any()
    assert (out[~changed] == 0.8).all()


def test_average_of_two_fine_tunes_is_their_mean_and_exports(tiny_data, tmp_path):
    """`emoscope average`: two fine-tunes of one run become one run folder whose weights are their
    mean, which export reads like any run; a run of another model is refused in plain words.
    `emoscope ensemble`: runs of different models become one whose logits are the mean of theirs."""
    import torch
    from emoscope.models.checkpoint import load_run_model
    from emoscope.train.trainer import Trainer
    start = TrainConfig(data=tiny_data, out=str(tmp_path / "start"), model="cnn_small", epochs=1, batch_size=32,
                        threads=2)
    Trainer(start, progress=False).fit()
    for name, seed in (("a", 1), ("b", 2)):
        Trainer(TrainConfig(data=tiny_data, out=str(tmp_path / name), model="cnn_small", epochs=1, batch_size=32,
                            threads=2, init=start.out, seed=seed), progress=False).fit()
    r = run_cli("average", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "mean"))
    assert r.returncode == 0, r.stderr
    (a, _, _), (b, _, _), (m, cfg, _) = (load_run_model(str(tmp_path / n)) for n in ("a", "b", "mean"))
    sa, sb = a.state_dict(), b.state_dict()
    for name, value in m.state_dict().items():
        if value.is_floating_point():
            assert torch.allclose(value, (sa[name] + sb[name]) / 2, atol=1e-6), name
    assert any(not torch.equal(sa[n], sb[n]) for n in sa if sa[n].is_floating_point())  # two different runs
    assert cfg["out"] == str(tmp_path / "mean")
    r = run_cli("export", str(tmp_path / "mean"), "--out", str(tmp_path / "mean.onnx"))
    assert r.returncode == 0 and os.path.exists(tmp_path / "mean.onnx"), r.stderr
    Trainer(TrainConfig(data=tiny_data, out=str(tmp_path / "other"), model="cnn_medium", epochs=1, batch_size=32,
                        threads=2), progress=False).fit()
    r = run_cli("average", str(tmp_path / "a"), str(tmp_path / "other"), "--out", str(tmp_path / "bad"))
    assert r.returncode != 0 and "its model (cnn_medium) differs" in r.stderr and "Traceback" not in r.stderr
    # an ensemble keeps any runs whole: its logits are the mean of theirs, in torch and in the ONNX file
    r = run_cli("ensemble", str(tmp_path / "a"), str(tmp_path / "other"), "--out", str(tmp_path / "ens"))
    assert r.returncode == 0, r.stderr
    x = torch.rand(5, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    (ens, _, _), (other, _, _) = (load_run_model(str(tmp_path / n)) for n in ("ens", "other"))
    with torch.no_grad():
        want = (a(x) + other(x)) / 2
        assert torch.allclose(ens(x), want, atol=1e-5)
    r = run_cli("export", str(tmp_path / "ens"), "--out", str(tmp_path / "ens.onnx"), "--no-class-bias")
    assert r.returncode == 0, r.stderr
    import onnxruntime as ort
    from emoscope.runtime.classifier import read_metadata
    sess = ort.InferenceSession(str(tmp_path / "ens.onnx"), providers=["CPUExecutionProvider"])
    assert np.allclose(sess.run(None, {"input": x.numpy()})[0], want.numpy(), atol=1e-4)
    assert read_metadata(sess, str(tmp_path / "ens.onnx")).extra["architecture"] == "cnn_small + cnn_medium"
    for verb, runs, says in (("ensemble", ["ens", "a"], "is an ensemble already"), ("average", ["a"], "at least 2 runs"),
                             ("ensemble", ["a", "missing"], "not a run folder with a best.pt")):
        r = run_cli(verb, *(str(tmp_path / n) for n in runs), "--out", str(tmp_path / "bad"))
        assert r.returncode != 0 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    with pytest.raises(ValueError, match="an ensemble of several networks cannot start one"):
        Trainer(TrainConfig(data=tiny_data, out=str(tmp_path / "next"), model="cnn_small", init=str(tmp_path / "ens")),
                progress=False)


def test_an_ensemble_reads_members_trained_at_other_input_sizes(tiny_data, tmp_path, capfd):
    """A run trained at 96 px joins one trained at 48 px, either way round: the ensemble reads its
    first run's size, and the other member its input resized in the graph as the data loader and the
    runtime's crop would (bilinear to enlarge, 2x2 means, OpenCV's area rule, to shrink), in torch and
    in the ONNX file; a size that is no whole factor of the input is refused in plain words. An
    exported file joins a run the same way (`export --join`), and files join one another with no run,
    each bringing the networks picked from it."""
    import cv2
    import onnxruntime as ort
    import torch
    import torch.nn.functional as F
    from emoscope.models.checkpoint import load_run_model
    from emoscope.runtime.classifier import read_metadata
    from emoscope.train.trainer import Trainer
    for size in (48, 96, 64):
        Trainer(TrainConfig(data=tiny_data, out=str(tmp_path / f"s{size}"), model="resnet_fer", model_kwargs={"width": 8},
                            epochs=1, batch_size=32, threads=2, img_size=size), progress=False).fit()
    assert "training in the contiguous layout, not channels_last: stages.1.short.0" in capfd.readouterr().err
    (a, _, _), (b, _, _) = (load_run_model(str(tmp_path / n)) for n in ("s48", "s96"))
    gen = torch.Generator().manual_seed(0)
    x48, x96 = torch.rand(4, 1, 48, 48, generator=gen), torch.rand(4, 1, 96, 96, generator=gen)
    with torch.no_grad():
        wants = {"e48": (x48, (a(x48) + b(F.interpolate(x48, size=(96, 96), mode="bilinear", align_corners=False))) / 2),
                 "e96": (x96, (b(x96) + a(F.avg_pool2d(x96, 2))) / 2)}
    for name, runs in (("e48", ("s48", "s96")), ("e96", ("s96", "s48"))):
        r = run_cli("ensemble", *(str(tmp_path / n) for n in runs), "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        x, want = wants[name]
        ens, cfg, _ = load_run_model(str(tmp_path / name))
        with torch.no_grad():
            assert cfg["img_size"] == x.shape[-1] and torch.allclose(ens(x), want, atol=1e-5)
        r = run_cli("export", str(tmp_path / name), "--out", str(tmp_path / f"{name}.onnx"), "--no-class-bias",
                    "--int8", str(tmp_path / f"{name}-int8.onnx"))
        assert r.returncode == 0, r.stderr
        sess = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        assert np.allclose(sess.run(None, {"input": x.numpy()})[0], want.numpy(), atol=1e-4)
        int8 = ort.InferenceSession(str(tmp_path / f"{name}-int8.onnx"), providers=["CPUExecutionProvider"])
        assert int8.run(None, {"input": x.numpy()})[0].shape == want.shape  # quantised with its resize
    # a file exported before joins a run as the same ensemble (each network weighing the same), at
    # the smaller input size, calibrated afresh; an int8 file or a missing one is refused in plain words
    r = run_cli("export", str(tmp_path / "e48"), "--out", str(tmp_path / "pair.onnx"), "--no-class-bias")
    assert r.returncode == 0, r.stderr
    r = run_cli("export", str(tmp_path / "s96"), "--join", str(tmp_path / "pair.onnx"), "--out",
                str(tmp_path / "three.onnx"), "--offsets-for", "macro_f1", "--offsets-cap", "1")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["max_abs_diff"] < 1e-4 and max(abs(b) for b in report["class_bias"]) <= 1
    sess = ort.InferenceSession(str(tmp_path / "three.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        three = (b(F.interpolate(x48, size=(96, 96), mode="bilinear", align_corners=False)) + 2 * wants["e48"][1]) / 3
    assert np.allclose(sess.run(None, {"input": x48.numpy()})[0], three.numpy(), atol=1e-4)
    meta = read_metadata(sess, str(tmp_path / "three.onnx"))
    assert meta.input_size == (48, 48) and meta.extra["joined"] == ["pair.onnx"]
    assert meta.extra["architecture"] == "resnet_fer + resnet_fer + resnet_fer"
    # files join one another with no run, calibrated on a recipe's validation data, each keeping the
    # networks named after its path (in the order of its architecture): networks 0 and 1 of the
    # three are the 96 px network and the 48 px one, that is the first ensemble again
    recipe = str(tmp_path / "s48" / "config.json")
    r = run_cli("export", "--config", recipe, "--join", f"{tmp_path / 'three.onnx'}:0,1", "--out",
                str(tmp_path / "picked.onnx"), "--int8", str(tmp_path / "picked-int8.onnx"))
    assert r.returncode == 0, r.stderr
    sess = ort.InferenceSession(str(tmp_path / "picked.onnx"), providers=["CPUExecutionProvider"])
    assert np.allclose(sess.run(None, {"input": x48.numpy()})[0], wants["e48"][1].numpy(), atol=1e-4)
    meta = read_metadata(sess, str(tmp_path / "picked.onnx"))
    assert meta.extra["architecture"] == "resnet_fer + resnet_fer" and meta.extra["joined"] == ["three.onnx:0,1"]
    assert meta.input_size == (48, 48) and len(meta.class_bias) == 7
    for args, says in (([str(tmp_path / "s96"), "--join", str(tmp_path / "e48-int8.onnx")], "join float files, not their int8 copies"),
                       ([str(tmp_path / "s96"), "--join", str(tmp_path / "nothing.onnx")], "does not exist"),
                       (["--config", recipe, "--join", f"{tmp_path / 'three.onnx'}:1,3"], "holds networks 0 to 2"),
                       (["--join", str(tmp_path / "three.onnx")], "and the --config of the recipe"),
                       (["--config", str(tmp_path / "none.json"), "--join", str(tmp_path / "three.onnx")],
                        "the recipe " + str(tmp_path / "none.json") + " does not exist"),
                       ([str(tmp_path / "s96"), "--config", recipe, "--join", str(tmp_path / "three.onnx")],
                        "a run brings its own recipe")):
        r = run_cli("export", *args, "--out", str(tmp_path / "bad.onnx"))
        assert r.returncode != 0 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    face = np.random.default_rng(0).integers(0, 256, (96, 96), dtype=np.uint8)  # the 2x2 mean is the area rule
    pooled = F.avg_pool2d(torch.from_numpy(face).float()[None, None], 2)[0, 0].numpy()
    assert np.abs(cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA) - pooled).max() <= 0.5
    r = run_cli("ensemble", str(tmp_path / "s96"), str(tmp_path / "s64"), "--out", str(tmp_path / "bad"))
    assert r.returncode != 0 and "96 is not a multiple of 64" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_missing_run_is_named_in_plain_words(tiny_data, tmp_path):
    """export, evaluate, ensemble and a warm start given a run that does not exist say so, and
    training on an empty folder says that, all without a traceback."""
    missing = str(tmp_path / "no-such-run")
    (tmp_path / "empty").mkdir()
    cases = [(["export", missing, "--out", str(tmp_path / "m.onnx")], "not a run folder with a best.pt"),
             (["evaluate", "--model", missing], "not a run folder with a best.pt"),
             (["ensemble", missing, missing, "--out", str(tmp_path / "e")], "not a run folder with a best.pt"),
             (["train", "--data", tiny_data, "--init", missing, "--out", str(tmp_path / "t"), "--epochs", "1"],
              "not a run folder with a best.pt"),
             (["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "u"), "--epochs", "1"], "empty")]
    for args, says in cases:
        r = run_cli(*args)
        assert r.returncode != 0 and says in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and "Errno" not in r.stderr, r.stderr
