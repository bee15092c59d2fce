"""torchvision models exported by PyTorch's own ONNX exporter, for tests/onnx/torch_test.cpp.

usage: /usr/bin/python3 torch_export.py OUTDIR

For each case, writes OUTDIR/NAME.onnx (torch.onnx.export, eval mode), NAME.in (the input) and
NAME.out (torchvision's logits for it), both raw little-endian float32, and NAME.json (shapes).
Random weights (seed 0) with random BatchNorm statistics (eval-mode export folds BN into a
preceding Conv; DenseNet keeps the others), plus a pre-LN Transformer encoder built from torch.nn.
Exit status 3 when torch/torchvision are not importable.
"""
import json
import os
import sys

try:
    import torch
    import torchvision
except ImportError as e:  # pragma: no cover
    print(f"torch/torchvision not importable: {e}", file=sys.stderr)
    sys.exit(3)

# name, constructor, input shape, opset, dynamic batch, constant folding
CASES = [
    ("resnet18", torchvision.models.resnet18, (2, 3, 64, 64), 13, True, True),
    ("resnet50", torchvision.models.resnet50, (1, 3, 64, 64), 14, False, True),
    ("densenet121", torchvision.models.densenet121, (2, 3, 64, 64), 16, True, True),
    ("prenorm_transformer", lambda num_classes: TransformerClassifier(num_classes), (2, 12, 16), 14, True, True),
]


class TransformerClassifier(torch.nn.Module):
    """A pre-LN encoder over 12 tokens of 16 features (torch's own TransformerEncoder): exported
    at opset 14, its LayerNorms and attention become ReduceMean/Pow/Sqrt, Shape/Gather/Concat,
    MatMul/Softmax chains."""

    def __init__(self, num_classes):
        super().__init__()
        self.embed = torch.nn.Linear(16, 32)
        layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(32))
        self.head = torch.nn.Linear(32, num_classes)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(dim=1))


def randomise(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    for name, ctor, shape, opset, dynamic, fold in CASES:
        model = ctor(num_classes=10)
        randomise(model)
        model.eval()
        x = torch.randn(*shape)
        with torch.no_grad():
            y = model(x)
        path = os.path.join(out, name)
        axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
        torch.onnx.export(model, x, path + ".onnx", opset_version=opset, input_names=["input"],
                          output_names=["logits"], dynamic_axes=axes, do_constant_folding=fold)
        x.numpy().astype("<f4").tofile(path + ".in")
        y.numpy().astype("<f4").tofile(path + ".out")
        with open(path + ".json", "w") as f:
            json.dump({"input": list(shape), "output": list(y.shape), "opset": opset}, f)
        print(f"{name}: exported at opset {opset}")


if __name__ == "__main__":
    main()
