#!/usr/bin/env python3
"""A local-experts mixture in PyTorch, read from and written to the safetensors files that
local-experts writes (stdlib + torch only: the files are read with json, struct and
torch.frombuffer, so neither the safetensors package nor numpy is needed).

    python3 local_experts.py MODEL.safetensors INPUTS.csv
        Print the mixture's output for every row of INPUTS.csv (a CSV with a header) as CSV:
        a header output_0,...,output_{K-1}, then one line per row, as local-experts'
        predict returns `output` (class probabilities, or regression in target units).
        The input columns are the model's feature names when it has them, else all columns;
        other columns are ignored.

    python3 local_experts.py MODEL.safetensors INPUTS.csv --train STEPS --out FILE
        Train STEPS full-batch steps on INPUTS.csv (the feature columns, and the targets in
        the columns named by the model's target names: class labels among the model's class
        names for classification) with the model's error function and optimiser (Adam by
        default; its state is restored from the file when the file has it), then write
        FILE: weights, optimiser state (unless --weights-only) and the metadata, with
        the training step advanced.

The module: LocalExperts(nn.Module) holds the standardisation (float64 buffers), the gate
and the experts as nn.Linear stacks, named as in the file:
    gate.layers.{l}.weight [n_{l+1}, n_l], gate.layers.{l}.bias [n_{l+1}],
    experts.{i}.layers.{l}.weight, experts.{i}.layers.{l}.bias,
    gate_noise.layers.0.weight [E, D], gate_noise.layers.0.bias [E]   (noisy top-k only),
    router_bias [E]                                                   (topk, switch: a buffer),
    optimizer.exp_avg.<name>, optimizer.exp_avg_sq.<name> (Adam),
    optimizer.momentum_buffer.<name> (SGD with momentum, dampening 0).

Routing (config.routing): dense (softmax over all experts); topk:K (the K largest of
u + router_bias, weights softmax of u over them; topk:1 as switch); switch (the largest
of u + router_bias, weight its softmax probability); expert-choice:C (at prediction each row's ceil(C) largest
log probabilities; in --train, per batch, each expert's ceil(C*N/E) rows of largest
log probability). Ties go to the lower index (expert, or row). --train trains without the noisy top-k gate's noise and without the
balancing losses and bias (local-experts trains those).
"""
import math
import argparse
import csv
import json
import os
import struct
import sys

try:
    import torch
    from torch import nn
except ModuleNotFoundError as missing:
    # The python3 on PATH (a venv, pyenv) may have no PyTorch while another does: MOE_PYTHON
    # names that one (as for `moe bench peers` and the tests), and the script runs there.
    other = os.environ.get("MOE_PYTHON")
    if other and not os.environ.get("LOCAL_EXPERTS_REEXEC"):
        os.environ["LOCAL_EXPERTS_REEXEC"] = "1"
        try:
            os.execv(other, [other, os.path.abspath(__file__), *sys.argv[1:]])
        except OSError as e:
            sys.exit(f"local_experts.py: MOE_PYTHON={other} cannot be run ({e.strerror})")
    sys.exit(
        f"local_experts.py: {sys.executable} cannot import torch ({missing}); run this script with a Python "
        "that has PyTorch (Debian: apt-get install python3-torch, then /usr/bin/python3), or name one in "
        "MOE_PYTHON (MOE_PYTHON=/path/to/python3 python3 local_experts.py ...)"
    )

FORMAT = "local-experts"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 100_000_000
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}
SLOTS = {"sgd": [], "momentum": ["momentum_buffer"], "adam": ["exp_avg", "exp_avg_sq"]}


class ModelFileError(Exception):
    """A safetensors file that is not a local-experts model this script can read."""


# --------------------------------------------------------------------------- safetensors


def load_safetensors(path):
    """Read a safetensors file of F32 tensors: ({name: tensor}, {metadata key: str})."""
    if sys.byteorder != "little":
        raise ModelFileError("this reader needs a little-endian machine")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ModelFileError(f"{path}: truncated ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise ModelFileError(f"{path}: header length {n} does not fit the file")
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    base = 8 + n
    tensors = {}
    end_of_data = 0
    for name, entry in header.items():
        if entry.get("dtype") != "F32":
            raise ModelFileError(f"{path}: tensor {name}: dtype {entry.get('dtype')} is not F32")
        begin, end = entry["data_offsets"]
        shape = entry["shape"]
        count = 1
        for d in shape:
            count *= d
        if end - begin != 4 * count or base + end > len(data):
            raise ModelFileError(f"{path}: tensor {name}: data_offsets [{begin}, {end}] do not fit shape {shape}")
        end_of_data = max(end_of_data, end)
        if count == 0:
            tensors[name] = torch.empty(shape, dtype=torch.float32)
        else:
            # A private copy of the bytes; frombuffer shares it, so the tensor owns it.
            tensors[name] = torch.frombuffer(bytearray(data[base + begin : base + end]), dtype=torch.float32).reshape(shape)
    return tensors, metadata


def save_safetensors(path, tensors, metadata):
    """Write {name: tensor} (as F32, row-major, contiguous) and string metadata."""
    if sys.byteorder != "little":
        raise ModelFileError("this writer needs a little-endian machine")
    header = {"__metadata__": {k: str(v) for k, v in metadata.items()}}
    flat = []
    offset = 0
    for name, t in tensors.items():
        t = t.detach().to(torch.float32).contiguous().reshape(-1)
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + 4 * t.numel()]}
        offset += 4 * t.numel()
        flat.append(t)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)  # data starts 8-byte aligned
    body = bytearray(offset)
    at = 0
    for t in flat:
        if t.numel() > 0:
            torch.frombuffer(body, dtype=torch.float32, count=t.numel(), offset=at).copy_(t)
        at += 4 * t.numel()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(body)


# --------------------------------------------------------------------------- the module


class MLP(nn.Module):
    """nn.Linear layers n_0 -> ... -> n_L; the activation between them, the last is linear."""

    def __init__(self, sizes, activation):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = ACTIVATIONS[activation]

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x


def _net_sizes(spec, n_in, n_out):
    hidden = list(spec.get("hidden") or []) if spec["kind"] == "mlp" else []
    return [n_in, *hidden, n_out]


class LocalExperts(nn.Module):
    """Adaptive mixture of local experts (Jacobs, Jordan, Nowlan & Hinton 1991) as
    local-experts defines it: a softmax gate over E experts, standardised inputs, and the
    error functions cooperative, competitive, gaussian and categorical."""

    def __init__(self, config, input_scaler=None, target_scaler=None):
        super().__init__()
        routing = config.get("routing") or {"kind": "dense", "k": config["experts"], "noise": False}
        if routing.get("kind") not in ("dense", "topk", "switch", "expert-choice"):
            raise ModelFileError(f"routing {routing!r} is not one this script knows")
        self.routing = routing
        self.config = config
        D, K, E = config["inputs"], config["outputs"], config["experts"]
        if routing.get("noise"):
            self.gate_noise = MLP([D, E], "tanh")
        if routing["kind"] in ("topk", "switch"):
            self.register_buffer("router_bias", torch.zeros(E))
        self.gate = MLP(_net_sizes(config["gate"], D, E), config["gate"].get("activation", "tanh"))
        self.experts = nn.ModuleList(
            MLP(_net_sizes(config["expert"], D, K), config["expert"].get("activation", "tanh")) for _ in range(E)
        )
        ident_in = {"mean": [0.0] * D, "std": [1.0] * D}
        ident_out = {"mean": [0.0] * K, "std": [1.0] * K}
        s_in, s_out = input_scaler or ident_in, target_scaler or ident_out
        # Not in the state dict: they travel as metadata. float64, as local-experts computes them.
        self.register_buffer("input_mean", torch.tensor(s_in["mean"], dtype=torch.float64), persistent=False)
        self.register_buffer("input_std", torch.tensor(s_in["std"], dtype=torch.float64), persistent=False)
        self.register_buffer("target_mean", torch.tensor(s_out["mean"], dtype=torch.float64), persistent=False)
        self.register_buffer("target_std", torch.tensor(s_out["std"], dtype=torch.float64), persistent=False)

    # Units ----------------------------------------------------------------------------
    def standardize(self, x):
        """Raw inputs [N, D] -> float32 z = (x - mean) / std, computed in float64."""
        x32 = torch.as_tensor(x, dtype=torch.float32)
        return ((x32.double() - self.input_mean) / self.input_std).float()

    def unstandardize(self, y):
        return (y.double() * self.target_std + self.target_mean).float()

    def standardize_targets(self, y):
        y32 = torch.as_tensor(y, dtype=torch.float32)
        return ((y32.double() - self.target_mean) / self.target_std).float()

    # Forward --------------------------------------------------------------------------
    def forward_standardized(self, z):
        """z [N, D] -> (gate logits u [N, E], expert outputs o [E, N, K]), model units."""
        u = self.gate(z)
        o = torch.stack([expert(z) for expert in self.experts])
        return u, o

    def chosen(self, u, batch=False):
        """[N, E] bool: each row's experts under the routing (ties to the lower index), as
        local-experts' routing plan (src/engine/routing-plan.ts) chooses them: topk and
        switch rank the float32 sum u + router_bias; expert-choice ranks log p."""
        r, (N, E) = self.routing, u.shape
        if r["kind"] == "dense":
            return torch.ones(N, E, dtype=torch.bool)
        mask = torch.zeros(N, E, dtype=torch.bool)
        if r["kind"] == "expert-choice":
            log_p = torch.log_softmax(u, dim=1).tolist()
            if batch:  # each expert its ceil(C*N/E) rows of largest log probability
                cap = min(N, math.ceil(r["k"] * N / E))
                for i in range(E):
                    order = sorted(range(N), key=lambda q: (-log_p[q][i], q))[:cap]
                    mask[order, i] = True
                return mask
            scores, k = log_p, min(E, math.ceil(r["k"]))
        else:
            scores, k = (u + self.router_bias).tolist(), int(r["k"])  # float32 sum
        for q in range(N):
            order = sorted(range(E), key=lambda i: (-scores[q][i], i))[:k]
            mask[q, order] = True
        return mask

    def weights(self, u, mask):
        """(log weights, weights) [N, E] of the chosen experts (-inf and 0 elsewhere)."""
        if self.routing["kind"] == "topk" and self.routing["k"] > 1:
            log_w = torch.log_softmax(u.masked_fill(~mask, float("-inf")), dim=1)
        else:
            log_w = torch.log_softmax(u, dim=1).masked_fill(~mask, float("-inf"))
        return log_w, torch.exp(log_w)

    def mixture(self, u, o):
        """Sum_i g_i softmax(z_i) (categorical) or Sum_i g_i o_i over the chosen experts, [N, K]."""
        _, g = self.weights(u, self.chosen(u))
        per_expert = torch.softmax(o, dim=2) if self.config["loss"] == "categorical" else o
        return (g.t().unsqueeze(2) * per_expert).sum(0)

    def forward(self, x):
        """Raw inputs [N, D] -> dict(output, gate, experts) as local-experts' predict."""
        u, o = self.forward_standardized(self.standardize(x))
        out = self.mixture(u, o)
        regression = self.config["task"] == "regression"
        return {
            "output": self.unstandardize(out) if regression else out,
            "gate": self.weights(u, self.chosen(u))[1],
            "experts": self.unstandardize(o) if regression else o,
        }

    def loss(self, z, target):
        """Mean error over the rows; target: standardised [N, K] or labels [N] (categorical)."""
        u, o = self.forward_standardized(z)
        mask = self.chosen(u.detach(), batch=True)
        log_g, g = self.weights(u, mask)
        kind = self.config["loss"]
        if kind == "categorical":
            log_p = torch.log_softmax(o, dim=2)  # [E, N, K]
            idx = target.long().view(1, -1, 1).expand(o.shape[0], -1, 1)
            log_py = log_p.gather(2, idx).squeeze(2).t()  # [N, E]
            return nll(log_g + log_py.masked_fill(~mask, 0.0), mask)
        if self.config["task"] == "classification":
            target = torch.nn.functional.one_hot(target.long(), self.config["outputs"]).float()
        if kind == "cooperative":
            ybar = (g.t().unsqueeze(2) * o).sum(0)
            return (0.5 * ((target - ybar) ** 2).sum(1)).mean()
        e = ((target.unsqueeze(0) - o) ** 2).sum(2).t()  # [N, E]
        if kind == "competitive":
            return (g * e.masked_fill(~mask, 0.0)).sum(1).mean()
        if kind == "gaussian":
            return nll(log_g - 0.5 * e.masked_fill(~mask, 0.0), mask)
        raise ModelFileError(f"unknown loss {kind!r}")


def nll(joint, mask):
    """Mean over the rows of -logsumexp over each row's chosen entries (a row with none adds 0)."""
    rows = mask.any(dim=1)
    per_row = -torch.logsumexp(joint.masked_fill(~mask, float("-inf"))[rows], dim=1)
    return per_row.sum() / joint.shape[0]


# --------------------------------------------------------------------------- files <-> module


def load_model(path):
    """(module, metadata, optimiser tensors {name: tensor}) from a local-experts safetensors file."""
    tensors, meta = load_safetensors(path)
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a local-experts model (no __metadata__.format = {FORMAT})")
    if int(meta.get("format_version", "0")) > FORMAT_VERSION:
        raise ModelFileError(f"{path}: format version {meta['format_version']} is newer than this script ({FORMAT_VERSION})")
    config = json.loads(meta["config"])
    scaler = lambda key: json.loads(meta[key]) if key in meta else None  # noqa: E731
    model = LocalExperts(config, scaler("input_scaler"), scaler("target_scaler"))
    weights = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    model.load_state_dict(weights, strict=True)
    opt_tensors = {k: v for k, v in tensors.items() if k.startswith("optimizer.")}
    return model, meta, opt_tensors


def make_optimizer(model, meta, opt_tensors):
    """The model's optimiser as torch.optim, its state restored from the file where present."""
    cfg = json.loads(meta.get("optimizer", '{"name": "adam", "lr": 0.01}'))
    name, wd = cfg.get("name", "adam"), cfg.get("weightDecay", 0.0)
    params = dict(model.named_parameters())
    if "gate_noise.layers.0.weight" in params:  # trained here without the noise: keep the noise network as it is
        params = {k: v for k, v in params.items() if not k.startswith("gate_noise.")}
    if name == "adam":
        opt = torch.optim.Adam(params.values(), lr=cfg["lr"], betas=(cfg.get("beta1", 0.9), cfg.get("beta2", 0.999)),
                               eps=cfg.get("epsilon", 1e-8), weight_decay=wd)
    elif name == "momentum":
        opt = torch.optim.SGD(params.values(), lr=cfg["lr"], momentum=cfg.get("momentum", 0.9), dampening=0, weight_decay=wd)
    else:
        opt = torch.optim.SGD(params.values(), lr=cfg["lr"], weight_decay=wd)
    step = json.loads(meta.get("training", '{"step": 0}')).get("step", 0)
    slots = SLOTS[name]
    if slots and all(f"optimizer.{s}.{p}" in opt_tensors for s in slots for p in params):
        for p_name, p in params.items():
            state = {s: opt_tensors[f"optimizer.{s}.{p_name}"].clone() for s in slots}
            if name == "adam":
                state["step"] = torch.tensor(float(step))
            opt.state[p] = state
    return opt, name


def save_model(path, model, meta, opt=None, opt_name="adam", steps=0):
    """Weights (+ optimiser state when opt is given) and metadata with the step advanced."""
    tensors = dict(model.state_dict())
    if opt is not None:
        params = dict(model.named_parameters())
        for s in SLOTS[opt_name]:
            for p_name, p in params.items():
                st = opt.state.get(p, {})
                tensors[f"optimizer.{s}.{p_name}"] = st[s] if s in st else torch.zeros_like(p)
    meta = dict(meta)
    training = json.loads(meta["training"])
    training["step"] = training.get("step", 0) + steps
    meta["training"] = json.dumps(training)
    meta["writer"] = "local-experts/pytorch"
    save_safetensors(path, tensors, meta)


# --------------------------------------------------------------------------- CSV


def read_csv(path, meta, with_targets):
    """(inputs [N, D] float lists, targets or None) from a CSV with a header."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty file")
    header, body = [h.strip() for h in rows[0]], [r for r in rows[1:] if any(c.strip() for c in r)]
    config = json.loads(meta["config"])
    features = json.loads(meta["feature_names"]) if "feature_names" in meta else header
    missing = [c for c in features if c not in header]
    if missing:
        raise ValueError(f"{path}: columns {', '.join(missing)} not in the header ({', '.join(header)})")
    if len(features) != config["inputs"]:
        raise ValueError(f"{path}: {len(features)} input columns, the model expects {config['inputs']}")
    fi = [header.index(c) for c in features]

    def number(row, j):
        cell = body[row][j].strip() if j < len(body[row]) else ""
        try:
            return float(cell)
        except ValueError:
            raise ValueError(f"{path}: row {row + 1}, column {header[j]}: {cell!r} is not a number") from None

    x = [[number(i, j) for j in fi] for i in range(len(body))]
    if not with_targets:
        return x, None
    if "target_names" not in meta:
        raise ValueError("the model has no target names: cannot find the target column(s)")
    targets = json.loads(meta["target_names"])
    missing = [c for c in targets if c not in header]
    if missing:
        raise ValueError(f"{path}: --train needs the target column(s) {', '.join(targets)}; {', '.join(missing)} not in the header ({', '.join(header)})")
    ti = [header.index(c) for c in targets]
    if config["task"] == "classification":
        classes = json.loads(meta.get("class_names", "[]"))

        def label(row):
            cell = body[row][ti[0]].strip()
            if cell in classes:
                return classes.index(cell)
            # A model without class names takes the labels as indices 0..K-1.
            if not classes and cell.isdigit() and int(cell) < config["outputs"]:
                return int(cell)
            known = ", ".join(classes) if classes else f"0..{config['outputs'] - 1}"
            raise ValueError(f"{path}: row {row + 1}, column {targets[0]}: label {cell!r} is not one of the model's classes ({known})")

        y = [label(i) for i in range(len(body))]
    else:
        y = [[number(i, j) for j in ti] for i in range(len(body))]
    return x, y


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="local-experts .safetensors file")
    ap.add_argument("inputs", help="CSV with a header")
    ap.add_argument("--train", type=int, metavar="STEPS", help="train this many full-batch steps, then write --out")
    ap.add_argument("--out", help="where --train writes the model")
    ap.add_argument("--weights-only", action="store_true", help="--train writes no optimiser state")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        model, meta, opt_tensors = load_model(args.model)
        if args.train is not None:
            if not args.out:
                ap.error("--train needs --out")
            x, y = read_csv(args.inputs, meta, True)
            z = model.standardize(x)
            if model.config["task"] == "classification":
                target = torch.tensor(y, dtype=torch.long)
            else:
                target = model.standardize_targets(y)
            opt, opt_name = make_optimizer(model, meta, opt_tensors)
            for step in range(args.train):
                opt.zero_grad()
                loss = model.loss(z, target)
                loss.backward()
                opt.step()
                print(f"step {step + 1}: loss {loss.item():.9g}", file=sys.stderr)
            save_model(args.out, model, meta, None if args.weights_only else opt, opt_name, args.train)
            return 0
        x, _ = read_csv(args.inputs, meta, False)
        with torch.no_grad():
            out = model(x)["output"]
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow([f"output_{k}" for k in range(out.shape[1])])
        for row in out.tolist():
            w.writerow([format(v, ".9g") for v in row])
        return 0
    except (ModelFileError, ValueError, KeyError) as e:
        print(f"local_experts.py: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
