#!/usr/bin/python3
"""PyTorch side of tests/parity/autocast_parity_test.cpp: conv2d under
torch.autocast(device_type="cpu", dtype=torch.bfloat16), forward and gradients.

Usage: /usr/bin/python3 torch_autocast.py SPEC.json INPUTS.safetensors OUTPUTS.safetensors

SPEC.json: {"cases": [{"id": "a0", "stride": S, "padding": P, "groups": G, "channels_last": bool,
                       "bias": bool}, ...]}
INPUTS holds f32 "<id>/x", "<id>/w", "<id>/gy" and, with bias, "<id>/b". OUTPUTS gets "<id>/y" (torch's
bf16 output, widened to f32) and "<id>/gx", "<id>/gw", "<id>/gb": the gradients of sum(y * gy) with
respect to the f32 inputs (autocast's casts are differentiable, so they arrive as f32).

Exit status 3 means torch could not be imported.
"""
import json
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    print("torch_autocast: cannot import torch from %s: %s" % (sys.executable, e), file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from safetensors_py import read_safetensors, write_safetensors  # noqa: E402


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    ins = read_safetensors(sys.argv[2])
    out = {}
    for c in spec["cases"]:
        i = c["id"]
        fmt = torch.channels_last if c["channels_last"] else torch.contiguous_format
        x = ins[i + "/x"].contiguous(memory_format=fmt).requires_grad_()
        w = ins[i + "/w"].clone().requires_grad_()
        b = ins[i + "/b"].clone().requires_grad_() if c["bias"] else None
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            y = F.conv2d(x, w, b, c["stride"], c["padding"], 1, c["groups"])
        if y.dtype != torch.bfloat16:
            raise RuntimeError("autocast did not run conv2d in bf16 (got %s)" % y.dtype)
        (y.float() * ins[i + "/gy"]).sum().backward()
        out[i + "/y"] = y.float()
        out[i + "/gx"] = x.grad
        out[i + "/gw"] = w.grad
        if b is not None:
            out[i + "/gb"] = b.grad
    write_safetensors(sys.argv[3], out)


if __name__ == "__main__":
    main()
