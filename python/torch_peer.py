#!/usr/bin/env python3
"""PyTorch peer of local-experts' benchmarks: the same mixture of experts, trained in PyTorch.

The workload (the peers benchmark's, SIZE_SPECS in bench/harness.ts):

  * E experts, each an MLP D -> hidden... -> K (tanh hidden units by default) or, without
    hidden layers, a linear map D -> K;
  * a linear gate D -> E, g = softmax(x W_g + b_g), kept as log g = log_softmax(...);
  * the Gaussian-mixture NLL of regression, E = -log sum_i g_i exp(-1/2 |d - o_i|^2),
    averaged over the batch and computed as -logsumexp_i(log g_i - 1/2 e_i);
  * Adam (lr 0.01 by default, betas 0.9/0.999, eps 1e-8, no weight decay);
  * random-normal inputs and targets, a few batches' worth, cycled; or, with --init and
    --data, the benchmark's own: the initial parameters local-experts exported
    (Mixture.toSafetensors: gate.layers.0.*, experts.{i}.layers.{l}.*, nn.Linear's
    out x in) and its standardised batches (raw little-endian float32, each row its D
    inputs then its K targets, the batches in the order the library trains on them).

One training step: forward of the gate and every expert on the batch, the loss (read back
with .item(), as the library's trainer reads its loss), backward, optimizer.step(),
zero_grad(set_to_none=True).

Threads: this script never picks a thread count on its own. BLAS and OpenMP pools read
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS from the environment when torch
is imported, so the caller sets them (one process per configuration); --torch-threads N
calls torch.set_num_threads(N) right after the import, before any work. Debian's torch
runs its products in the system OpenBLAS, whose own pool torch.set_num_threads does not
control: process CPU time / wall time shows how many cores a run really used.

Subnormal floats: --flush-denormal sets flush-to-zero and denormals-are-zero BEFORE
`import torch`, through the C library (glibc's fegetenv/fesetenv in libm.so.6, a
read-modify-write of the environment: on x86-64 the fenv_t holds MXCSR at byte 28, FTZ is
bit 15 and DAZ bit 6), so that the threads OpenBLAS starts when torch loads inherit it, and
then calls torch.set_flush_denormal(True) (which reaches the calling thread only).

Output: one JSON line on stdout,
  {"torch", "threads", "impl", "samplesPerSecond", "steps", "wallSeconds", "cpuSeconds",
   "cpuPerWall", "batch", "loss", "losses", "stepSeconds", "flushDenormal", ...}
where cpuSeconds is the process CPU time (all threads, user + system) of the measured
window, losses the loss of each of the first steps from the start (warm-up included) and
stepSeconds the wall time of each timed step, in order. Errors: one line on stderr, exit
status 2.

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
# Losses reported from the start (warm-up included), for the same-start check.
FIRST_LOSSES = 10


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
    p.add_argument("--min-steps", type=positive_int("min-steps"), default=1, help="with --time: at least this many timed steps (default 1)")
    p.add_argument("--torch-threads", type=positive_int("torch-threads"), help="torch.set_num_threads(N) before any work (default: leave torch's own)")
    p.add_argument("--seed", type=int, default=1, help="seed of data and initial parameters (default 1)")
    p.add_argument("--init", help="initial parameters: a local-experts safetensors file (the benchmark's own start)")
    p.add_argument("--data", help="the batches: raw float32, rows of D inputs then K targets, in training order")
    p.add_argument("--processes", type=positive_int("processes"), default=1, help="train data-parallel in this many processes (DDP over gloo, each its share of every batch); default 1")
    p.add_argument("--rank", type=int, help=argparse.SUPPRESS)
    p.add_argument("--rendezvous", help=argparse.SUPPRESS)
    p.add_argument("--flush-denormal", action="store_true", help="flush-to-zero and denormals-are-zero set before import torch (MXCSR through the C library), then torch.set_flush_denormal(True)")
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

# ---------------------------------------------------------------------------------------
# Subnormals


def set_ftz_daz():
    """FTZ and DAZ in this thread's MXCSR through glibc's fegetenv/fesetenv (read-modify-write:
    a zeroed fenv_t would unmask every exception), before torch starts any thread. Returns
    None where it took, else why not (then the caller says so; torch.set_flush_denormal still
    runs)."""
    import ctypes
    import platform

    if platform.machine() not in ("x86_64", "AMD64") or platform.libc_ver()[0] != "glibc":
        return f"MXCSR through glibc needs x86-64 glibc, this is {platform.machine()} {platform.libc_ver()[0] or 'no glibc'}"
    try:
        libm = ctypes.CDLL("libm.so.6")
    except OSError as err:
        return f"libm.so.6: {err}"
    env = ctypes.create_string_buffer(64)  # glibc's x86-64 fenv_t is 32 bytes
    if libm.fegetenv(env) != 0:
        return "fegetenv failed"
    mxcsr = int.from_bytes(env.raw[28:32], "little") | (1 << 15) | (1 << 6)
    env[28:32] = mxcsr.to_bytes(4, "little")
    if libm.fesetenv(env) != 0:
        return "fesetenv failed"
    check = ctypes.create_string_buffer(64)
    libm.fegetenv(check)
    if int.from_bytes(check.raw[28:32], "little") & 0x8040 != 0x8040:
        return "MXCSR did not keep FTZ and DAZ"
    return None


def flushes(torch):
    """Does float32 arithmetic on this thread flush a subnormal (DAZ: 1e-39 * 1 gives 0)?"""
    x = torch.tensor([1e-39], dtype=torch.float32)
    return float((x * 1.0)[0]) == 0.0


# ---------------------------------------------------------------------------------------
# The benchmark's own start and batches


def load_init(torch, path):
    """{name: tensor} of a local-experts safetensors file (F32 only; its optimiser state ignored)."""
    import struct

    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    base, out = 8 + n, {}
    for name, entry in header.items():
        if name.startswith("optimizer."):
            continue
        if entry.get("dtype") != "F32":
            fail(f"{path}: tensor {name} is {entry.get('dtype')}, not F32")
        begin, end = entry["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[base + begin : base + end]), dtype=torch.float32).reshape(entry["shape"]).clone()
    return out


def apply_init(torch, model, tensors, shape, impl):
    """Copy the library's initial parameters into the model (either expert form)."""
    E, L = shape["experts"], len(shape["hidden"]) + 1
    want = ["gate.layers.0.weight", "gate.layers.0.bias"] + [f"experts.{i}.layers.{l}.{p}" for i in range(E) for l in range(L) for p in ("weight", "bias")]
    missing = [k for k in want if k not in tensors]
    if missing:
        fail(f"--init: no tensor {missing[0]} (a linear gate and {E} experts of {L} layers expected)")
    with torch.no_grad():
        model.gate.weight.copy_(tensors["gate.layers.0.weight"])
        model.gate.bias.copy_(tensors["gate.layers.0.bias"])
        for i in range(E):
            for l in range(L):
                w, b = tensors[f"experts.{i}.layers.{l}.weight"], tensors[f"experts.{i}.layers.{l}.bias"]
                if impl == "linear":
                    model.experts[i][l].weight.copy_(w)
                    model.experts[i][l].bias.copy_(b)
                else:
                    model.w[l][i].copy_(w.t())
                    model.b[l][i, 0].copy_(b)


def load_batches(torch, path, shape):
    """(xs [nb, B, D], ds [nb, B, K]) from the raw float32 file, in training order."""
    D, K, B = shape["inputs"], shape["outputs"], shape["batch"]
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    rows = len(raw) // (4 * (D + K))
    if rows * 4 * (D + K) != len(raw) or rows < B:
        fail(f"--data: {len(raw)} bytes are not whole rows of {D} + {K} float32 (at least {B} rows)")
    nb = rows // B
    t = torch.frombuffer(raw, dtype=torch.float32).reshape(rows, D + K)[: nb * B].clone()
    return t[:, :D].reshape(nb, B, D).contiguous(), t[:, D:].reshape(nb, B, K).contiguous()


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


DDP_TIMEOUT_S = 90


def launch(argv, a):
    """DDP: start one process per rank (this script again, with --rank), each setting its own
    FTZ/DAZ before importing torch; print rank 0's JSON line. No torch in this process."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="torch-peer-") as d:
        rdv = os.path.join(d, "rendezvous")
        procs = [
            subprocess.Popen([sys.executable, os.path.abspath(__file__), *argv, "--rank", str(r), "--rendezvous", rdv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for r in range(a.processes)
        ]
        # A rank that hangs (a deadlock in gloo or at exit) must not hang the benchmark.
        outs = []
        for p in procs:
            try:
                outs.append(p.communicate(timeout=DDP_TIMEOUT_S))
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                fail(f"a DDP rank did not finish within {DDP_TIMEOUT_S} s")
    for p, (out, err) in zip(procs, outs):
        if p.returncode != 0:
            sys.stderr.write(err)
            return p.returncode or 2
    sys.stdout.write(outs[0][0])
    return 0


def main(argv):
    a = parse_args(argv)
    if a.processes > 1 and a.rank is None:
        if a.shape["batch"] % a.processes != 0:
            fail(f"--processes {a.processes} must divide the batch ({a.shape['batch']} rows)")
        return launch(argv, a)
    ddp = a.processes > 1
    # Before import torch: the threads torch's OpenBLAS starts inherit this thread's MXCSR.
    ftz_problem = set_ftz_daz() if a.flush_denormal else None
    try:
        import torch
    except Exception as err:  # noqa: BLE001 - the caller wants the reason, whatever it is
        fail(f"cannot import torch: {type(err).__name__}: {err}")
    if a.flush_denormal:
        torch.set_flush_denormal(True)
    if a.torch_threads is not None:
        torch.set_num_threads(a.torch_threads)
    if a.self_test:
        return self_test(torch, a)

    torch.manual_seed(a.seed)
    shape = a.shape
    B = shape["batch"]
    model = build(torch, shape, a.activation, a.impl)
    if a.init is not None:
        apply_init(torch, model, load_init(torch, a.init), shape, a.impl)
    dist = None
    if ddp:
        import torch.distributed as dist

        dist.init_process_group("gloo", init_method=f"file://{a.rendezvous}", rank=a.rank, world_size=a.processes)
        # Every rank starts from the same parameters (the seed or --init); DDP averages the gradients.
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    if a.data is not None:
        xs, ds = load_batches(torch, a.data, shape)
    else:
        xs = torch.randn(BATCHES, B, shape["inputs"])
        ds = torch.randn(BATCHES, B, shape["outputs"])
    if ddp:
        # Each rank its share of every batch (equal shares: the mean of the ranks' means is the batch mean).
        part = B // a.processes
        xs = xs[:, a.rank * part : (a.rank + 1) * part].contiguous()
        ds = ds[:, a.rank * part : (a.rank + 1) * part].contiguous()
    nb = xs.shape[0]
    t = 0
    losses = []

    def step():
        nonlocal t
        i = t % nb
        t += 1
        loss = model(xs[i], ds[i])
        if ddp and len(losses) < FIRST_LOSSES:
            whole = loss.detach().clone()
            dist.all_reduce(whole)
            value = whole.item() / a.processes
        else:
            value = loss.item()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if len(losses) < FIRST_LOSSES:
            losses.append(value)
        return value

    loss = float("nan")
    for _ in range(a.warmup):
        loss = step()
    budget = 3.0 if a.time is None and a.steps is None else a.time
    steps = 0
    step_seconds = []
    c0 = time.process_time()
    w0 = time.perf_counter()
    while True:
        s0 = time.perf_counter()
        loss = step()
        step_seconds.append(time.perf_counter() - s0)
        steps += 1
        if a.steps is not None:
            if steps >= a.steps:
                break
        else:
            done = time.perf_counter() - w0 >= budget and steps >= a.min_steps
            if ddp:
                # Rank 0's clock decides for every rank.
                flag = torch.tensor([1.0 if done else 0.0])
                dist.broadcast(flag, 0)
                done = flag.item() > 0
            if done:
                break
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0
    if ddp:
        # Process CPU time of every rank.
        total = torch.tensor([cpu], dtype=torch.float64)
        dist.all_reduce(total)
        cpu = total.item()
        # No destroy_process_group(): a rank waited there forever in CI (gloo); the ranks
        # leave with os._exit once their part is done (see the end of this file).
        if a.rank != 0:
            return 0
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "processes": a.processes,
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
        "losses": [v if math.isfinite(v) else None for v in losses],
        "stepSeconds": step_seconds,
        "flushDenormal": bool(a.flush_denormal),
        "flushes": flushes(torch),
        "mxcsr": None if not a.flush_denormal else (ftz_problem or "set"),
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    if "--rank" in sys.argv:
        # A DDP rank: its result is printed; leave without the interpreter's teardown, which
        # can wait forever joining gloo's and torch's threads (seen: 1 run in CI hung there).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
