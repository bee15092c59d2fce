# torchvision oracle for the model-zoo tests (run by /usr/bin/python3, Debian's python3-torchvision).
#
#   torchvision_oracle.py counts OUT.json NAME...
#       Parameter counts of torchvision.models.NAME() (1000 classes). "plainN" is resnetN without
#       its shortcut projections (every parameter under a `downsample` module left out).
#   torchvision_oracle.py interchange DIR NAME...
#       For each NAME: (1) loads DIR/resin_NAME.safetensors (resin's weights and BN statistics plus
#       "input") into torchvision's model, evaluates it and writes DIR/tv_on_resin_NAME.safetensors
#       {"logits"}; (2) builds torchvision's model from seed 1234 with randomised BN statistics and
#       affine parameters, evaluates it on a fixed input and writes DIR/tv_NAME.safetensors (its
#       whole state dict, plus "input" and "logits"). Both loads are strict.
# safetensors is read and written here with json + struct (no safetensors package). Exit status 3:
# torch or torchvision cannot be imported.
import json
import struct
import sys

try:
    import torch
    import torchvision
except Exception as e:  # noqa: BLE001 - any import failure means the oracle is unavailable
    print("cannot import torch/torchvision: %r" % (e,))
    sys.exit(3)

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}


def save(path, tensors):
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:end]), dtype=DTYPES[e["dtype"]]) if end > b else torch.empty(0)
        out[name] = t.reshape(e["shape"])
    return out


def build(name):
    return getattr(torchvision.models, name)(weights=None)


def skip_initialisation():
    """Counting needs shapes only: make weight initialisation a no-op (torch.empty stays)."""
    def keep(tensor, *args, **kwargs):
        return tensor
    for fn in ("kaiming_normal_", "kaiming_uniform_", "normal_", "uniform_", "constant_", "trunc_normal_"):
        setattr(torch.nn.init, fn, keep)
    for cls in (torch.nn.Conv2d, torch.nn.Linear, torch.nn.modules.batchnorm._NormBase):
        cls.reset_parameters = lambda self: None


def counts(out_path, names):
    skip_initialisation()
    result = {}
    for name in names:
        plain = name.startswith("plain")
        model = build("resnet" + name[len("plain"):] if plain else name)
        result[name] = sum(p.numel() for n, p in model.named_parameters() if not (plain and ".downsample." in n))
    with open(out_path, "w") as f:
        json.dump(result, f)


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=gen) * 0.4 - 0.2)


def interchange(directory, names):
    torch.set_num_threads(2)
    for name in names:
        # (1) resin -> torchvision
        state = load("%s/resin_%s.safetensors" % (directory, name))
        x = state.pop("input")
        model = build(name)
        model.load_state_dict(state, strict=True)  # raises, naming the keys, on any mismatch
        model.eval()
        with torch.no_grad():
            save("%s/tv_on_resin_%s.safetensors" % (directory, name), {"logits": model(x)})
        # (2) torchvision -> resin
        torch.manual_seed(1234)
        gen = torch.Generator().manual_seed(4321)
        model = build(name)
        randomise_bn(model, gen)
        model.eval()
        x = torch.randn(x.shape, generator=gen)
        with torch.no_grad():
            logits = model(x)
        out = dict(model.state_dict())
        out["input"] = x
        out["logits"] = logits
        save("%s/tv_%s.safetensors" % (directory, name), out)
        print("%s: done" % name, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "counts":
        counts(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "interchange":
        interchange(sys.argv[2], sys.argv[3:])
    else:
        print("unknown command %r" % sys.argv[1])
        sys.exit(2)
