"""safetensors read/write for the PyTorch oracles (tests/*/*.py), so each oracle exchanges tensors with
resin through the same file format resin itself writes. Imported by path: the oracles put this folder on
sys.path. Debian's python3-torch has no `safetensors` package, hence this small reader/writer."""
import json
import struct

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32,
          "U8": torch.uint8, "BF16": torch.bfloat16}
NAMES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path):
    """{name: tensor} (copies, contiguous); the header's __metadata__ is ignored."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = bytearray(raw[8 + n:])
    out = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        dt = DTYPES[e["dtype"]]
        if end == begin:
            out[name] = torch.zeros(e["shape"], dtype=dt)
        else:
            count = (end - begin) // torch.tensor([], dtype=dt).element_size()
            out[name] = torch.frombuffer(data, dtype=dt, count=count, offset=begin).clone().reshape(e["shape"])
    return out


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} sorted by name, header padded to 8 bytes, optional string metadata."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


def cotangent(shape, k, dtype, salt=0):
    """Deterministic output weights r_k[i] = ((i·7919 + k·104729 + salt) mod 2003)/1001.5 − 1 over the
    flat index i; the C++ tests compute the same tensors."""
    n = 1
    for d in shape:
        n *= d
    vals = [((i * 7919 + k * 104729 + salt) % 2003) / 1001.5 - 1.0 for i in range(n)]
    return torch.tensor(vals, dtype=torch.float64).reshape(shape).to(dtype)
