#!/usr/bin/python3
"""PyTorch oracle for tests/optim: reads cases written by a C++ test, prints torch's answers.

Usage: /usr/bin/python3 torch_oracle.py {optimizers|schedules|clip} INPUT

Input and output are whitespace-separated lines; floats travel as C99/Python hex floats so no
value is rounded in transit. Exit status 3 (with a message) when torch cannot be imported.

optimizers input:
  case NAME sgd|adamw f32|f64 STEPS [key=value ...]    options: momentum dampening nesterov beta1 beta2 eps amsgrad
  group LR WD                                            starts a parameter group
  param NDIM DIMS... VALUES...                           adds a parameter to the last group
  grad STEP GROUP INDEX VALUES...                        the gradient for that step (absent = None)
  end
output: "fma 0|1|mixed" (whether torch's add(alpha=) is a fused multiply-add), then
  result NAME STEP GROUP INDEX VALUES...                 parameters after each step
schedules input:
  sched NAME STEPS LR,LR,... EXPRESSION                  EXPRESSION builds a scheduler of `opt`
output: lr NAME STEP LR...                               group lrs at each step (step 0 = after construction)
clip input:
  clip NAME f32|f64 MAX_NORM NORM_TYPE ERROR_IF_NONFINITE
  g NDIM DIMS... VALUES... | nog                         one parameter with / without a gradient
  end
output: norm NAME VALUE, then grad NAME INDEX VALUES... (the gradients afterwards), or error NAME
"""
import sys

try:
    import torch
except Exception as e:  # noqa: BLE001 - any import failure means "no oracle"
    print(f"TORCH_IMPORT_FAILED: {e}; run scripts/install-deps.sh to install python3-torch")
    sys.exit(3)

from fractions import Fraction
import math


def hexs(values):
    return " ".join(float(v).hex() for v in values)


def floats(tokens):
    return [float.fromhex(t) for t in tokens]


def dtype_of(name):
    return {"f32": torch.float32, "f64": torch.float64}[name]


def read_blocks(lines, head):
    """Splits lines into blocks that start with `head` and end with 'end'."""
    block = None
    for line in lines:
        tok = line.split()
        if not tok:
            continue
        if tok[0] == head:
            block = [tok]
        elif tok[0] == "end":
            yield block
            block = None
        else:
            block.append(tok)


def fma_probe():
    # torch's CPU add(alpha=) kernel: fused on AVX2/AVX-512 builds, separately rounded otherwise.
    a = [math.sin(i + 0.5) for i in range(64)]
    b = [math.cos(3 * i + 0.25) for i in range(64)]
    alpha = -0.1234567
    got = torch.tensor(a, dtype=torch.float64).add(torch.tensor(b, dtype=torch.float64), alpha=alpha).tolist()
    fused = [float(Fraction(alpha) * Fraction(y) + Fraction(x)) for x, y in zip(a, b)]
    plain = [x + alpha * y for x, y in zip(a, b)]
    if got == fused:
        return "1"
    if got == plain:
        return "0"
    return "mixed"


def run_optimizers(lines):
    out = [f"fma {fma_probe()}"]
    for block in read_blocks(lines, "case"):
        _, name, kind, dt, steps = block[0][:5]
        opts = dict(kv.split("=") for kv in block[0][5:])
        dtype = dtype_of(dt)
        groups, grads = [], {}
        for tok in block[1:]:
            if tok[0] == "group":
                groups.append({"params": [], "lr": float.fromhex(tok[1]), "weight_decay": float.fromhex(tok[2])})
            elif tok[0] == "param":
                nd = int(tok[1])
                dims = [int(d) for d in tok[2:2 + nd]]
                vals = floats(tok[2 + nd:])
                groups[-1]["params"].append(torch.tensor(vals, dtype=dtype).reshape(dims).requires_grad_())
            elif tok[0] == "grad":
                grads[(int(tok[1]), int(tok[2]), int(tok[3]))] = floats(tok[4:])
        if kind == "sgd":
            opt = torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=float.fromhex(opts.get("momentum", "0x0p+0")),
                                  dampening=float.fromhex(opts.get("dampening", "0x0p+0")),
                                  nesterov=opts.get("nesterov", "0") == "1")
        else:
            opt = torch.optim.AdamW(groups, lr=groups[0]["lr"],
                                    betas=(float.fromhex(opts["beta1"]), float.fromhex(opts["beta2"])),
                                    eps=float.fromhex(opts["eps"]), amsgrad=opts.get("amsgrad", "0") == "1")
        for s in range(int(steps)):
            for gi, g in enumerate(opt.param_groups):
                for pi, p in enumerate(g["params"]):
                    v = grads.get((s, gi, pi))
                    p.grad = None if v is None else torch.tensor(v, dtype=dtype).reshape(p.shape)
            opt.step()
            for gi, g in enumerate(opt.param_groups):
                for pi, p in enumerate(g["params"]):
                    out.append(f"result {name} {s} {gi} {pi} {hexs(p.detach().reshape(-1).tolist())}")
    return out


def run_schedules(lines):
    import warnings
    from torch.optim import lr_scheduler as L
    # SequentialLR calls step(0) on the next scheduler at a milestone, which warns each time.
    warnings.filterwarnings("ignore", message="The epoch parameter")
    env = {k: getattr(L, k) for k in dir(L) if not k.startswith("_")}
    out = []
    for line in lines:
        tok = line.split(maxsplit=4)
        if not tok or tok[0] != "sched":
            continue
        _, name, steps, lrs, expr = tok
        params = [torch.zeros(1, requires_grad=True) for _ in lrs.split(",")]
        opt = torch.optim.SGD([{"params": [p], "lr": float.fromhex(lr)} for p, lr in zip(params, lrs.split(","))])
        sched = eval(expr, dict(env), {"opt": opt})  # the expression comes from our own C++ test
        for s in range(int(steps)):
            if s > 0:
                opt.step()  # no gradients: parameters stay; keeps torch's ordering check quiet
                sched.step()
            out.append(f"lr {name} {s} {hexs(g['lr'] for g in opt.param_groups)}")
    return out


def run_clip(lines):
    out = []
    for block in read_blocks(lines, "clip"):
        _, name, dt, max_norm, norm_type, err = block[0]
        dtype = dtype_of(dt)
        params = []
        for tok in block[1:]:
            p = torch.zeros(1, dtype=dtype, requires_grad=True)
            if tok[0] == "g":
                nd = int(tok[1])
                dims = [int(d) for d in tok[2:2 + nd]]
                p = torch.zeros(dims, dtype=dtype, requires_grad=True)
                p.grad = torch.tensor(floats(tok[2 + nd:]), dtype=dtype).reshape(dims)
            params.append(p)
        try:
            total = torch.nn.utils.clip_grad_norm_(params, float.fromhex(max_norm), float.fromhex(norm_type),
                                                   error_if_nonfinite=err == "1")
        except RuntimeError:
            out.append(f"error {name}")
            continue
        out.append(f"norm {name} {hexs([total.item()])}")
        for i, p in enumerate(params):
            if p.grad is not None:
                out.append(f"grad {name} {i} {hexs(p.grad.reshape(-1).tolist())}")
    return out


def main():
    mode, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        lines = f.read().splitlines()
    run = {"optimizers": run_optimizers, "schedules": run_schedules, "clip": run_clip}[mode]
    print("\n".join(run(lines)))


if __name__ == "__main__":
    main()
