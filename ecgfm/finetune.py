"""Classifiers on ECGs: fine-tuning a pretrained encoder, and the supervised baselines.

* ``Classifier``: a backbone (our ViT encoder, or the 1D-ResNet50) + one linear layer on its
  pooled features (the ViT: mean of the patch tokens, as in linear probing), one logit per task.
* ``train_classifier``: binary cross-entropy over the tasks, AdamW with a cosine schedule; the
  backbone of a pretrained model learns at ``encoder_lr_scale`` times the head's rate. After
  each epoch the mean AUROC over the tasks on the *validation* records decides: the best epoch's
  weights are kept, and training stops after ``patience`` epochs without improvement. The test
  fold is never an argument of this function.
* ``head_init: probe`` (a pretrained encoder only): the head starts as the linear probe of the
  frozen encoder (the logistic regressions of ``ecgfm.probe``, C chosen on the validation
  records, folded into one linear layer), and that starting point competes as "epoch -1" for the
  best validation AUROC: linear probing then fine-tuning (LP-FT, Kumar et al. 2022), which keeps
  a random head from distorting the pretrained features in the first steps.
* Saved models are portable: ``model.safetensors`` (all weights), ``encoder.safetensors`` (the
  ViT encoder alone, loadable by ``ecgfm.load_encoder``) and ``config.json`` (kind,
  architecture, tasks, preprocessing, provenance).
"""
from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .encoder import backbone
from .metrics import auroc
from .model import autocast_for


class Classifier(nn.Module):
    def __init__(self, kind: str, architecture: dict, n_outputs: int):
        super().__init__()
        self.kind = kind
        self.backbone = backbone(kind, architecture)
        self.head = nn.Linear(self.backbone.arch.features, n_outputs)

    def features(self, x):
        return self.backbone.embed(x)

    def forward(self, x):
        return self.head(self.features(x))

    def backbone_parameters(self):
        if self.kind == "vit":      # the decoder and projection head of pretraining are not used
            return [p for n, p in self.backbone.named_parameters()
                    if n.startswith(("patch_embed.", "blocks.", "norm."))]
        return list(self.backbone.parameters())


def device_for_training() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


@torch.no_grad()
def _in_batches(fn, x: np.ndarray, batch_size: int, device, width: int) -> np.ndarray:
    """``fn`` over ``x`` [n, ...] in batches on ``device`` (autocast as in training) -> [n, width]."""
    out = []
    for start in range(0, len(x), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size], dtype=np.float32)).to(device)
        with autocast_for(device):
            out.append(fn(chunk).float().cpu().numpy())
    return np.concatenate(out) if out else np.empty((0, width), np.float32)


def predict_logits(model: Classifier, x: np.ndarray, batch_size: int = 256, device=None) -> np.ndarray:
    device = device or next(model.parameters()).device
    model.eval()
    return _in_batches(model, x, batch_size, device, model.head.out_features)


def mean_auroc(y: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean([auroc(y[:, k], scores[:, k]) for k in range(y.shape[1])]))


def train_classifier(model: Classifier, x_train, y_train, x_val, y_val, settings: dict, seed: int,
                     pretrained: bool, device=None, log=print, loss_fn=None, score_fn=None,
                     init_head=None) -> list[dict]:
    """Train in place; returns the history (one dict per epoch). Keeps the best validation epoch.

    By default the tasks are binary (cross-entropy, mean validation AUROC). ``ecgfm.adapt`` gives
    targets of other kinds its own ``loss_fn(logits, y)``, ``score_fn(y_val, val_logits)`` (higher
    is better) and ``init_head(model)`` (the LP-FT starting point instead of the binary probe)."""
    device = device or device_for_training()
    y_train = np.asarray(y_train, dtype=np.float32)
    if loss_fn is None:
        y_val = np.asarray(y_val, dtype=bool)
        for k in range(y_train.shape[1]):
            if y_train[:, k].min() == y_train[:, k].max() or y_val[:, k].min() == y_val[:, k].max():
                raise ValueError(f"task {k}: training or validation labels are all one class")
    score_fn = score_fn or mean_auroc
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.to(device)
    scale = settings["encoder_lr_scale"] if pretrained else 1.0
    head = list(model.head.parameters())
    backbone = model.backbone_parameters()
    groups = []
    for params, lr in ((backbone, settings["lr"] * scale), (head, settings["lr"])):
        groups.append({"params": [p for p in params if p.ndim >= 2], "lr": lr, "weight_decay": settings["weight_decay"]})
        groups.append({"params": [p for p in params if p.ndim < 2], "lr": lr, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups)
    batch = int(settings["batch_size"])
    per_epoch = max(1, len(x_train) // batch)      # the last incomplete batch is dropped
    total = per_epoch * int(settings["max_epochs"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    loss_fn = loss_fn or nn.BCEWithLogitsLoss()
    best, best_state, since_best, history = -np.inf, None, 0, []
    if pretrained and settings.get("head_init", "random") == "probe":
        start = time.perf_counter()
        if init_head is not None:
            init_head(model)
        else:
            init_head_from_probe(model, x_train, y_train, x_val, y_val, settings, device)
        val = score_fn(y_val, predict_logits(model, x_val, settings.get("eval_batch_size", 256), device))
        history.append({"epoch": -1, "train_loss": float("nan"), "val_auroc": val,
                        "seconds": time.perf_counter() - start})
        log(f"head from the linear probe: validation score {val:.4f}")
        best, best_state = val, copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
    for epoch in range(int(settings["max_epochs"])):
        model.train()
        order = rng.permutation(len(x_train))
        start, losses = time.perf_counter(), []
        for b in range(per_epoch):
            idx = np.sort(order[b * batch:(b + 1) * batch])
            xb = torch.from_numpy(np.ascontiguousarray(x_train[idx], dtype=np.float32)).to(device, non_blocking=True)
            yb = torch.from_numpy(y_train[idx]).to(device, non_blocking=True)
            with autocast_for(device):
                loss = loss_fn(model(xb).float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), settings.get("grad_clip", 1.0))
            optimizer.step()
            scheduler.step()
            losses.append(loss.detach())
        val = score_fn(y_val, predict_logits(model, x_val, settings.get("eval_batch_size", 256), device))
        history.append({"epoch": epoch, "train_loss": float(torch.stack(losses).mean()), "val_auroc": val,
                        "seconds": time.perf_counter() - start})
        log(f"epoch {epoch}: train loss {history[-1]['train_loss']:.4f}, validation score {val:.4f}")
        if val > best:
            best, since_best = val, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        else:
            since_best += 1
            if since_best >= int(settings["patience"]):
                break
    model.load_state_dict(best_state)
    for h in history:
        h["best"] = h["val_auroc"] == best
    return history


def features_of(model: Classifier, x: np.ndarray, batch_size: int, device) -> np.ndarray:
    model.eval()
    return _in_batches(model.features, x, batch_size, device, model.head.in_features)


def init_head_from_probe(model: Classifier, x_train, y_train, x_val, y_val, settings: dict, device) -> list:
    """Set the head to the linear probe of the current (frozen) backbone: per task, the
    standardized logistic regression of ``ecgfm.probe.fit_probe`` (C from ``probe_c_grid``,
    chosen on the validation records) folded into weights on the raw features. Returns the Cs."""
    from .probe import fit_probe
    batch = settings.get("eval_batch_size", 256)
    f_train, f_val = features_of(model, x_train, batch, device), features_of(model, x_val, batch, device)
    probe = fit_probe(f_train, np.asarray(y_train, bool), f_val, np.asarray(y_val, bool),
                      settings["probe_c_grid"], settings.get("probe_max_iter", 1000))
    weight = np.stack([m.coef_[0] for m in probe.models]) / probe.scale            # [tasks, features]
    bias = np.array([m.intercept_[0] for m in probe.models]) - weight @ probe.mean
    with torch.no_grad():
        model.head.weight.copy_(torch.as_tensor(weight, dtype=model.head.weight.dtype))
        model.head.bias.copy_(torch.as_tensor(bias, dtype=model.head.bias.dtype))
    return probe.c


def new_classifier(spec: dict, n_outputs: int, encoder_dir=None, seed: int = 0) -> Classifier:
    """A classifier from ``spec`` ({kind, architecture}), initialised from ``seed``, its ViT encoder
    loaded from a pretraining output folder when ``encoder_dir`` is given."""
    torch.manual_seed(seed)
    model = Classifier(spec["kind"], spec["architecture"], n_outputs)
    if encoder_dir is not None:
        from .encoder import load_model
        model.backbone.load_state_dict(load_model(encoder_dir).state_dict())
    return model


def save_classifier(model: Classifier, out_dir, config: dict) -> None:
    from safetensors.torch import save_file
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    if model.kind == "vit":
        save_file({k: v.detach().cpu().contiguous() for k, v in model.backbone.encoder_state_dict().items()},
                  str(out / "encoder.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_classifier(path, device="cpu") -> tuple[Classifier, dict]:
    from safetensors.torch import load_file
    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    model = Classifier(config["kind"], config["architecture"], len(config["tasks"]))
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    return model.to(device).eval(), config

