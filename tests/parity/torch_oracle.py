#!/usr/bin/python3
"""PyTorch oracle for resin's parity tests (tests/parity/parity_test.cpp).

Usage: /usr/bin/python3 torch_oracle.py SPEC.json INPUTS.safetensors OUTPUTS.safetensors

SPEC.json: {"cases": [{"id": "c0001", "op": "conv2d", "attrs": {...},
                        "inputs": [{"present": true, "layout": "channels_last", "grad": true, "state": false}, ...]}]}
INPUTS holds "<id>/in<k>" for every present input (logical values, contiguous).
For each case the oracle computes out = op(inputs), then the gradients of
sum_k sum(out_k * r_k) with respect to every input with "grad": true, where r_k is the fixed
weight tensor cotangent(shape, k) below (resin computes the same one). It writes
"<id>/out<k>", "<id>/grad<k>" (gradient of input k) and "<id>/state<k>" (input k after the call,
for inputs the op updates in place, e.g. batch-norm running statistics). A case that raises is
recorded in the output metadata under its id, and the other cases still run.

Exit status 3 means torch could not be imported.
"""
import json
import os
import sys
import traceback

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # the C++ side turns this into a test failure with install advice
    print("torch_oracle: cannot import torch from %s: %s" % (sys.executable, e), file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from safetensors_py import read_safetensors, write_safetensors, cotangent  # noqa: E402


def all_dims(x, dims):
    return list(dims) if dims else list(range(x.dim()))


def batch_norm(x, w, b, rm, rv, a):
    return F.batch_norm(x, rm, rv, w, b, training=a["training"], momentum=a["momentum"], eps=a["eps"])


def residual_block(x, w1, g1, b1, rm1, rv1, w2, g2, b2, rm2, rv2, a):
    # relu(bn2(conv2(relu(bn1(conv1(x))))) + x), 3x3 convolutions with padding 1, no conv bias.
    h = F.relu(F.batch_norm(F.conv2d(x, w1, None, 1, 1), rm1, rv1, g1, b1, a["training"], 0.1, 1e-5))
    h = F.batch_norm(F.conv2d(h, w2, None, 1, 1), rm2, rv2, g2, b2, a["training"], 0.1, 1e-5)
    return F.relu(h + x)


OPS = {
    "add": lambda x, y, a: x + y,
    "add_relu": lambda x, y, a: F.relu(x + y),
    "sub": lambda x, y, a: x - y,
    "mul": lambda x, y, a: x * y,
    "div": lambda x, y, a: x / y,
    "add_scalar": lambda x, a: x + a["s"],
    "mul_scalar": lambda x, a: x * a["s"],
    "neg": lambda x, a: -x,
    "exp": lambda x, a: torch.exp(x),
    "log": lambda x, a: torch.log(x),
    "sqrt": lambda x, a: torch.sqrt(x),
    "rsqrt": lambda x, a: torch.rsqrt(x),
    "pow": lambda x, a: torch.pow(x, a["exponent"]),
    "abs": lambda x, a: torch.abs(x),
    "clamp": lambda x, a: torch.clamp(x, a["lo"], a["hi"]),
    "relu": lambda x, a: F.relu(x),
    "leaky_relu": lambda x, a: F.leaky_relu(x, a["slope"]),
    "gelu": lambda x, a: F.gelu(x, approximate="tanh" if a["tanh"] else "none"),
    "sigmoid": lambda x, a: torch.sigmoid(x),
    "tanh": lambda x, a: torch.tanh(x),
    "softplus": lambda x, a: F.softplus(x, a["beta"], a["threshold"]),
    "where": lambda c, x, y, a: torch.where(c != 0, x, y),
    "sum": lambda x, a: torch.sum(x, all_dims(x, a["dims"]), keepdim=a["keepdim"]),
    "mean": lambda x, a: torch.mean(x, all_dims(x, a["dims"]), keepdim=a["keepdim"]),
    "max": lambda x, a: torch.amax(x, all_dims(x, a["dims"]), keepdim=a["keepdim"]),
    "min": lambda x, a: torch.amin(x, all_dims(x, a["dims"]), keepdim=a["keepdim"]),
    "var": lambda x, a: torch.var(x, all_dims(x, a["dims"]), correction=a["correction"], keepdim=a["keepdim"]),
    "matmul": lambda x, y, a: torch.matmul(x, y),
    "linear": lambda x, w, b, a: F.linear(x, w, b),
    "conv2d": lambda x, w, b, a: F.conv2d(x, w, b, a["stride"], a["padding"], a["dilation"], a["groups"]),
    "batch_norm": batch_norm,
    "batch_norm_relu": lambda x, w, b, rm, rv, a: F.relu(batch_norm(x, w, b, rm, rv, a)),
    "layer_norm": lambda x, w, b, a: F.layer_norm(x, a["shape"], w, b, a["eps"]),
    "max_pool2d": lambda x, a: F.max_pool2d(x, a["kernel"], a["stride"], a["padding"]),
    "avg_pool2d": lambda x, a: F.avg_pool2d(x, a["kernel"], a["stride"], a["padding"],
                                            count_include_pad=a["count_include_pad"]),
    "adaptive_avg_pool2d": lambda x, a: F.adaptive_avg_pool2d(x, a["size"]),
    "concat": lambda *xs: torch.cat(xs[:-1], xs[-1]["dim"]),
    "stack": lambda *xs: torch.stack(xs[:-1], xs[-1]["dim"]),
    "split": lambda x, a: torch.split(x, a["size"], a["dim"]),
    "pad": lambda x, a: F.pad(x, a["amounts"], value=a["value"]),
    "reshape": lambda x, a: x.reshape(a["shape"]),
    "permute": lambda x, a: x.permute(a["order"]),
    "narrow": lambda x, a: x.narrow(a["dim"], a["start"], a["length"]),
    "expand": lambda x, a: x.expand(a["shape"]),
    "contiguous": lambda x, a: x.contiguous(
        memory_format=torch.channels_last if a["channels_last"] else torch.contiguous_format),
    "softmax": lambda x, a: F.softmax(x, a["dim"]),
    "log_softmax": lambda x, a: F.log_softmax(x, a["dim"]),
    "cross_entropy": lambda x, t, a: F.cross_entropy(x, t, reduction=a["reduction"],
                                                     label_smoothing=a["label_smoothing"]),
    "nll_loss": lambda x, t, a: F.nll_loss(x, t, reduction=a["reduction"]),
    "mse_loss": lambda x, y, a: F.mse_loss(x, y, reduction=a["reduction"]),
    # Masks cannot match between libraries: the C++ side only sends identity cases (eval, p = 0).
    "dropout": lambda x, a: F.dropout(x, a["p"], a["training"]),
    "embedding": lambda i, w, a: F.embedding(i, w),
    "residual_block": residual_block,
}


def run_case(case, inputs):
    cid = case["id"]
    args, leaves, out = [], [], {}
    for k, spec in enumerate(case["inputs"]):
        if not spec["present"]:
            args.append(None)
            continue
        t = inputs["%s/in%d" % (cid, k)].clone()
        if spec["layout"] == "channels_last":
            t = t.contiguous(memory_format=torch.channels_last)
        if spec["grad"]:
            t.requires_grad_(True)
            leaves.append((k, t))
        args.append(t)
    result = OPS[case["op"]](*args, case["attrs"])
    outs = list(result) if isinstance(result, (tuple, list)) else [result]
    for k, o in enumerate(outs):
        out["%s/out%d" % (cid, k)] = o.detach().clone()
    if leaves:
        loss = sum((o * cotangent(o.shape, k, o.dtype)).sum() for k, o in enumerate(outs))
        grads = torch.autograd.grad(loss, [t for _, t in leaves], allow_unused=True)
        for (k, t), g in zip(leaves, grads):
            out["%s/grad%d" % (cid, k)] = torch.zeros_like(t) if g is None else g
    for k, spec in enumerate(case["inputs"]):
        if spec["present"] and spec["state"]:
            out["%s/state%d" % (cid, k)] = args[k].detach().clone()
    return out


def main():
    spec_path, in_path, out_path = sys.argv[1:4]
    torch.set_num_threads(1)  # deterministic summation order, and the machine is shared
    spec = json.load(open(spec_path))
    inputs = read_safetensors(in_path)
    outputs, errors = {}, {}
    for case in spec["cases"]:
        try:
            outputs.update(run_case(case, inputs))
        except Exception:  # recorded per case; the C++ test reports it
            errors[case["id"]] = traceback.format_exc(limit=3)
    write_safetensors(out_path, outputs, errors)
    print("torch_oracle: torch %s, %d cases, %d errors" % (torch.__version__, len(spec["cases"]), len(errors)))


if __name__ == "__main__":
    main()
