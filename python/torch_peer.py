#!/usr/bin/env python3
"""PyTorch peer of local-experts' benchmarks: the same mixture of experts, trained in PyTorch.

The workload (the peers benchmark's, SIZE_SPECS in bench/harness.ts):

  * E experts, each an MLP D -> hidden... -> K (tanh hidden units by default) or, without
    hidden layers, a linear map D -> K;
  * a linear gate D -> E, g = softmax(x W_g + b_g), kept as log g = log_softmax(...);
  * the Gaussian-mixture NLL of regression, E = -log sum_i g_i exp(-1/2 |d - o_i|^2),
    averaged over the batch and computed as -logsumexp_i(log g_i - 1/2 e_i);
  * Adam (lr 0.01 by default, betas 0.9/0.999, eps 1e-8, no weight decay);
  * random-normal inputs and targets, a few batches' worth, cycled.

One training step: forward of the gate and every expert on the batch, the loss (read back
with .item(), as the library's trainer reads its loss), backward, optimizer.step(),
zero_grad(set_to_none=True).

Threads: this script never picks a thread count on its own. BLAS and OpenMP pools read
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS from the environment when torch
is imported, so the caller sets them (one process per configuration); --torch-threads N
calls torch.set_num_threads(N) right after the import, before any work. Debian's torch
runs its products in the system OpenBLAS, whose own pool torch.set_num_threads does not
control: process CPU time / wall time shows how many cores a run really used.

Output: one JSON line on stdout,
  {"torch", "threads", "impl", "samplesPerSecond", "steps", "wallSeconds", "cpuSeconds",
   "cpuPerWall", "batch", "loss", ...}
where cpuSeconds is the process CPU time (all threads, user + system) of the measured
window. Errors: one line on stderr, exit status 2.

Standard library and torch only.
"""

import argparse
import json
import math
import os
import sys
import time

# Problem sizes, as SIZE_SPECS in bench/harness.ts (experts: the peers benchmark's 8).
SIZES = {
    "small": dict(inputs=2, outputs=4, hidden=[], experts=8, batch=32),
    "medium": dict(inputs=256, outputs=256, hidden=[512], experts=8, batch=512),
    "large": dict(inputs=1024, outputs=1024, hidden=[1024], experts=8, batch=256),
}
IMPLS = ("bmm", "linear")
ACTIVATIONS = ("tanh", "relu", "sigmoid")


def default_impl(hidden):
    """The faster expert form, measured with torch 1.13 on the project's 2-core AMD EPYC
    machine (medians of 3 rounds, samples/s, one core): linear experts (small) in one
    batched product, bmm 79,000 against linear 35,000 (the per-expert ops dominate);
    MLP experts as E nn.Linear stacks, medium 7,020 against bmm 6,040, large 860 against
    620 (and 10,100 against 8,800, 1,180 against 835 on two cores)."""
    return "linear" if hidden else "bmm"


# Distinct batches held in memory; the steps cycle over them.
BATCHES = 8


def fail(message):
    print(f"torch_peer: {message}", file=sys.stderr)
    sys.exit(2)


def number_arg(name, convert, ok, what):
    """An argparse type: `convert` the text, then require `ok` of it; else one message naming the flag."""

    def parse(text):
        try:
            v = convert(text)
        except ValueError:
            v = None
        if v is None or not ok(v):
            raise argparse.ArgumentTypeError(f"--{name} must be {what}, got {text!r}")
        return v

    return parse


def positive_int(name):
    return number_arg(name, int, lambda v: v >= 1, "a positive integer")


def non_negative_int(name):
    return number_arg(name, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(name):
    return number_arg(name, float, lambda v: v > 0 and math.isfinite(v), "a positive number")


def hidden_list(text):
    """'512' or '512,256' -> [512] / [512, 256]; '' or '0' -> [] (linear experts)."""
    text = text.strip()
    if text in ("", "0", "none"):
        return []
    out = []
    for part in text.split(","):
        try:
            v = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--hidden must be widths like 512 or 512,256 (0 for linear experts), got {text!r}")
        if v < 1:
            raise argparse.ArgumentTypeError(f"--hidden widths must be positive, got {text!r}")
        out.append(v)
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(description="Train local-experts' benchmark mixture in PyTorch and time full training steps.")
    p.add_argument("--size", choices=sorted(SIZES), help="a named size (the shape options below override its fields)")
    p.add_argument("--inputs", type=positive_int("inputs"), help="input width D")
    p.add_argument("--outputs", type=positive_int("outputs"), help="output width K")
    p.add_argument("--hidden", type=hidden_list, help="hidden widths, e.g. 512 or 512,256; 0 for linear experts")
    p.add_argument("--experts", type=positive_int("experts"), help="experts E")
    p.add_argument("--batch", type=positive_int("batch"), help="rows per step")
    p.add_argument("--activation", choices=ACTIVATIONS, default="tanh", help="hidden units (default tanh)")
    p.add_argument("--impl", choices=IMPLS, help="experts as batched [E, in, out] tensors (bmm) or E nn.Linear stacks (linear); default the faster here: bmm for linear experts, linear for MLPs")
    p.add_argument("--lr", type=positive_float("lr"), default=0.01, help="Adam's learning rate (default 0.01)")
    p.add_argument("--warmup", type=non_negative_int("warmup"), default=3, help="untimed steps first (default 3)")
    p.add_argument("--time", type=positive_float("time"), help="time steps for this many seconds (default 3)")
    p.add_argument("--steps", type=positive_int("steps"), help="time exactly this many steps (instead of --time)")
    p.add_argument("--torch-threads", type=positive_int("torch-threads"), help="torch.set_num_threads(N) before any work (default: leave torch's own)")
    p.add_argument("--seed", type=int, default=1, help="seed of data and initial parameters (default 1)")
    p.add_argument("--self-test", action="store_true", help="check both expert forms against a float64 reference and each other, print one JSON line, time nothing")
    a = p.parse_args(argv)
    if a.time is not None and a.steps is not None:
        p.error("give --time or --steps, not both")
    base = dict(SIZES[a.size]) if a.size else {}
    for key in ("inputs", "outputs", "hidden", "experts", "batch"):
        v = getattr(a, key)
        if v is not None:
            base[key] = v
    missing = [k for k in ("inputs", "outputs", "hidden", "experts", "batch") if k not in base]
    if missing:
        p.error("give --size or every shape option; missing: " + ", ".join("--" + m for m in missing))
    a.shape = base
    if a.impl is None:
        a.impl = default_impl(base["hidden"])
    return a


# ---------------------------------------------------------------------------------------
# The mixture (torch is imported in main(), after the environment is as the caller set it)


def build(torch, shape, activation, impl):
    """The gate and experts as torch modules; returns (module, forward(x, d) -> loss)."""
    nn = torch.nn
    D, K, E, hidden = shape["inputs"], shape["outputs"], shape["experts"], shape["hidden"]
    widths = [D] + list(hidden) + [K]
    act = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[activation]

    class Mixture(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = nn.Linear(D, E)
            if impl == "linear":
                self.experts = nn.ModuleList(
                    nn.ModuleList(nn.Linear(widths[l], widths[l + 1]) for l in range(len(widths) - 1)) for _ in range(E)
                )
            else:
                # One [E, n_in, n_out] weight and [E, 1, n_out] bias per layer, nn.Linear's init.
                self.w = nn.ParameterList()
                self.b = nn.ParameterList()
                for l in range(len(widths) - 1):
                    bound = 1.0 / math.sqrt(widths[l])
                    self.w.append(nn.Parameter(torch.empty(E, widths[l], widths[l + 1]).uniform_(-bound, bound)))
                    self.b.append(nn.Parameter(torch.empty(E, 1, widths[l + 1]).uniform_(-bound, bound)))

        def errors(self, x, d):
            """e_i = |d - o_i|^2 for every row and expert, B x E."""
            if impl == "linear":
                cols = []
                for layers in self.experts:
                    h = x
                    for l, layer in enumerate(layers):
                        h = layer(h)
                        if l < len(layers) - 1:
                            h = act(h)
                    cols.append(((d - h) ** 2).sum(dim=1))
                return torch.stack(cols, dim=1)
            h = x.unsqueeze(0).expand(E, -1, -1)  # E x B x D, a view
            last = len(self.w) - 1
            for l in range(len(self.w)):
                h = torch.baddbmm(self.b[l], h, self.w[l])  # E x B x n_{l+1}
                if l < last:
                    h = act(h)
            return ((d.unsqueeze(0) - h) ** 2).sum(dim=2).t()  # B x E

        def forward(self, x, d):
            log_g = torch.log_softmax(self.gate(x), dim=1)
            return -torch.logsumexp(log_g - 0.5 * self.errors(x, d), dim=1).mean()

    return Mixture()


def self_test(torch, a):
    """Both expert forms from the same parameters: loss and every gradient must agree, and
    the loss must match the mixture NLL written out in float64. Prints one JSON line."""
    torch.manual_seed(a.seed)
    shape = a.shape
    E, hidden = shape["experts"], shape["hidden"]
    L = len(hidden) + 1
    bm = build(torch, shape, a.activation, "bmm")
    li = build(torch, shape, a.activation, "linear")
    with torch.no_grad():
        li.gate.weight.copy_(bm.gate.weight)
        li.gate.bias.copy_(bm.gate.bias)
        for i in range(E):
            for l in range(L):
                li.experts[i][l].weight.copy_(bm.w[l][i].t())
                li.experts[i][l].bias.copy_(bm.b[l][i, 0])
    x = torch.randn(shape["batch"], shape["inputs"])
    d = torch.randn(shape["batch"], shape["outputs"])
    lb, ll = bm(x, d), li(x, d)
    lb.backward()
    ll.backward()
    # The reference: E = mean_r -log sum_i g_i exp(-1/2 e_i), in float64, no log-space tricks.
    act = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[a.activation]
    X, Dd = x.double(), d.double()
    g = torch.softmax(X @ bm.gate.weight.double().t() + bm.gate.bias.double(), dim=1)
    total = torch.zeros(shape["batch"], dtype=torch.float64)
    for i in range(E):
        h = X
        for l in range(L):
            h = h @ bm.w[l][i].double() + bm.b[l][i, 0].double()
            if l < L - 1:
                h = act(h)
        total += g[:, i] * torch.exp(-0.5 * ((Dd - h) ** 2).sum(dim=1))
    ref = float((-torch.log(total)).mean())

    def rel(u, v):
        return float((u - v).abs().max() / v.abs().max().clamp_min(1e-30))

    grads = {"gate.weight": rel(li.gate.weight.grad, bm.gate.weight.grad), "gate.bias": rel(li.gate.bias.grad, bm.gate.bias.grad)}
    for l in range(L):
        gw = torch.stack([li.experts[i][l].weight.grad.t() for i in range(E)])
        gb = torch.stack([li.experts[i][l].bias.grad for i in range(E)]).unsqueeze(1)
        grads[f"w{l}"] = rel(gw, bm.w[l].grad)
        grads[f"b{l}"] = rel(gb, bm.b[l].grad)
    out = {
        "torch": torch.__version__,
        "lossBmm": float(lb),
        "lossLinear": float(ll),
        "lossReference": ref,
        "gradRelDiff": grads,
    }
    tol = 1e-4
    out["ok"] = (
        math.isfinite(ref)
        and abs(float(lb) - ref) <= tol * max(1.0, abs(ref))
        and abs(float(ll) - ref) <= tol * max(1.0, abs(ref))
        and all(v <= tol for v in grads.values())
    )
    print(json.dumps(out))
    return 0 if out["ok"] else 1


def main(argv):
    a = parse_args(argv)
    try:
        import torch
    except Exception as err:  # noqa: BLE001 - the caller wants the reason, whatever it is
        fail(f"cannot import torch: {type(err).__name__}: {err}")
    if a.torch_threads is not None:
        torch.set_num_threads(a.torch_threads)
    if a.self_test:
        return self_test(torch, a)

    torch.manual_seed(a.seed)
    shape = a.shape
    B = shape["batch"]
    model = build(torch, shape, a.activation, a.impl)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    xs = torch.randn(BATCHES, B, shape["inputs"])
    ds = torch.randn(BATCHES, B, shape["outputs"])
    t = 0

    def step():
        nonlocal t
        i = t % BATCHES
        t += 1
        loss = model(xs[i], ds[i])
        value = loss.item()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return value

    loss = float("nan")
    for _ in range(a.warmup):
        loss = step()
    budget = 3.0 if a.time is None and a.steps is None else a.time
    steps = 0
    c0 = time.process_time()
    w0 = time.perf_counter()
    while True:
        loss = step()
        steps += 1
        if a.steps is not None:
            if steps >= a.steps:
                break
        elif time.perf_counter() - w0 >= budget:
            break
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "impl": a.impl,
        "samplesPerSecond": steps * B / wall,
        "steps": steps,
        "wallSeconds": wall,
        "cpuSeconds": cpu,
        "cpuPerWall": cpu / wall,
        "batch": B,
        "shape": shape,
        "activation": a.activation,
        "loss": loss if math.isfinite(loss) else None,
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
