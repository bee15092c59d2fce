#!/usr/bin/python3
"""PyTorch oracle for resin's Transformer parity tests (tests/blocks/transformer_parity_test.cpp).

Usage: /usr/bin/python3 transformer_oracle.py SPEC.json INPUTS.safetensors OUTPUTS.safetensors

SPEC.json: {"cases": [{"id": "t00", "kind": "mha" | "encoder_layer" | "decoder_layer" | "encoder" | "decoder",
                        "dtype": "f32" | "f64", "dim": E, "heads": H, "ff": F, "activation": "relu" | "gelu",
                        "norm_first": bool, "layers": L, "final_norm": bool, "self_attention": bool,
                        "inputs": [names], "masks": [names]}]}
INPUTS holds "<id>/param/<name>" (resin's state dict, torch's names), "<id>/input/<name>" and
"<id>/mask/<name>" (0/1 values; 1 = blocked, torch's boolean convention).
For each case the oracle builds the torch module (dropout 0, batch_first, training mode), loads the
parameters strictly, runs it, and back-propagates sum_k sum(out_k * r_k) with r_k = cotangent(shape, k).
It writes "<id>/out<k>", "<id>/grad_input/<name>" and "<id>/grad_param/<name>".

Exit status 3 means torch could not be imported; any other failure is an error, never a skip.
"""
import json
import os
import sys

try:
    import torch
    import torch.nn as nn
except ImportError as e:
    print("transformer_oracle: cannot import torch from %s: %s" % (sys.executable, e), file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from safetensors_py import read_safetensors, write_safetensors, cotangent  # noqa: E402


def build(c):
    E, H, F = c["dim"], c["heads"], c["ff"]
    kind = c["kind"]
    common = dict(d_model=E, nhead=H, dim_feedforward=F, dropout=0.0, activation=c["activation"],
                  batch_first=True, norm_first=c["norm_first"])
    if kind == "mha":
        return nn.MultiheadAttention(E, H, dropout=0.0, batch_first=True)
    if kind == "encoder_layer":
        return nn.TransformerEncoderLayer(**common)
    if kind == "decoder_layer":
        return nn.TransformerDecoderLayer(**common)
    norm = nn.LayerNorm(E) if c["final_norm"] else None
    if kind == "encoder":
        return nn.TransformerEncoder(nn.TransformerEncoderLayer(**common), c["layers"], norm=norm,
                                     enable_nested_tensor=False)
    if kind == "decoder":
        return nn.TransformerDecoder(nn.TransformerDecoderLayer(**common), c["layers"], norm=norm)
    raise ValueError("unknown kind " + kind)


def run(c, inputs, masks):
    kind = c["kind"]
    m = masks.get
    if kind == "mha":
        if c["self_attention"]:
            q = k = v = inputs["x"]
        else:
            q, k, v = inputs["q"], inputs["k"], inputs["v"]
        out, w = c["module"](q, k, v, key_padding_mask=m("key_padding_mask"), need_weights=True,
                             attn_mask=m("attn_mask"), average_attn_weights=True)
        return [out, w]
    if kind in ("encoder_layer", "encoder"):
        mod = c["module"]
        if kind == "encoder_layer":
            return [mod(inputs["x"], src_mask=m("attn_mask"), src_key_padding_mask=m("key_padding_mask"))]
        return [mod(inputs["x"], mask=m("attn_mask"), src_key_padding_mask=m("key_padding_mask"))]
    return [c["module"](inputs["tgt"], inputs["memory"], tgt_mask=m("tgt_mask"), memory_mask=m("memory_mask"),
                        tgt_key_padding_mask=m("tgt_key_padding_mask"),
                        memory_key_padding_mask=m("memory_key_padding_mask"))]


def main():
    spec = json.load(open(sys.argv[1]))
    data = read_safetensors(sys.argv[2])
    results = {}
    torch.manual_seed(0)
    for c in spec["cases"]:
        cid = c["id"]
        dtype = torch.float64 if c["dtype"] == "f64" else torch.float32
        module = build(c).to(dtype)
        params = {k[len(cid) + 7:]: v for k, v in data.items() if k.startswith(cid + "/param/")}
        module.load_state_dict(params, strict=True)
        module.train()
        c["module"] = module
        inputs = {}
        for name in c["inputs"]:
            inputs[name] = data[cid + "/input/" + name].to(dtype).requires_grad_(True)
        masks = {name: data[cid + "/mask/" + name] != 0 for name in c["masks"]}
        outs = run(c, inputs, masks)
        loss = sum((o * cotangent(o.shape, k, dtype, salt=17)).sum() for k, o in enumerate(outs))
        loss.backward()
        for k, o in enumerate(outs):
            results["%s/out%d" % (cid, k)] = o
        for name, t in inputs.items():
            results["%s/grad_input/%s" % (cid, name)] = t.grad
        for name, p in module.named_parameters():
            results["%s/grad_param/%s" % (cid, name)] = p.grad
    write_safetensors(sys.argv[3], results)


if __name__ == "__main__":
    main()
