# PyTorch oracle for the model-zoo tests (run by /usr/bin/python3, Debian's python3-torchvision).
#
#   zoo_oracle.py counts OUT.json NAME...
#       Parameter counts of torchvision.models.NAME() (1000 classes). "plainN" is resnetN without
#       its shortcut projections (every parameter under a `downsample` module left out).
#   zoo_oracle.py interchange DIR NAME...
#       For each NAME: (1) loads DIR/resin_NAME.safetensors (resin's weights and BN statistics plus
#       "input") into torchvision's model, evaluates it and writes DIR/tv_on_resin_NAME.safetensors
#       {"logits"}; (2) builds torchvision's model from seed 1234 with randomised BN statistics and
#       affine parameters, evaluates it on a fixed input and writes DIR/tv_NAME.safetensors (its
#       whole state dict, plus "input" and "logits"). Both loads are strict.
#   zoo_oracle.py cifar DIR NAME...
#       For each NAME (a CIFAR zoo model without a torchvision counterpart): evaluates the network
#       as the paper's reference code defines it, written below with torch.nn.functional from
#       resin's weights DIR/resin_NAME.safetensors (plus "input"), and writes
#       DIR/ref_NAME.safetensors {"logits"}.
# safetensors is read and written by tests/support/safetensors_py.py (json + struct, no safetensors
# package). Exit status 3: torch or torchvision cannot be imported.
import json
import os
import sys

try:
    import torch
    import torchvision
except Exception as e:  # noqa: BLE001 - any import failure means the oracle is unavailable
    print("cannot import torch/torchvision: %r" % (e,))
    sys.exit(3)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from safetensors_py import read_safetensors, write_safetensors  # noqa: E402


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
        state = read_safetensors("%s/resin_%s.safetensors" % (directory, name))
        x = state.pop("input")
        model = build(name)
        model.load_state_dict(state, strict=True)  # raises, naming the keys, on any mismatch
        model.eval()
        with torch.no_grad():
            write_safetensors("%s/tv_on_resin_%s.safetensors" % (directory, name), {"logits": model(x)})
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
        write_safetensors("%s/tv_%s.safetensors" % (directory, name), out)
        print("%s: done" % name, flush=True)


# ---- CIFAR reference networks, functional, eval mode. Block counts come from the state-dict keys.
F = torch.nn.functional


def bn(x, sd, p):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"],
                        False, 0.0, 1e-5)


def count(sd, fmt):
    """How many i = 1, 2, ... have fmt % i in sd."""
    i = 0
    while (fmt % (i + 1)) in sd:
        i += 1
    return i


def stages(sd):
    return count(sd, "layer%d.0.conv1.weight")


def units(sd, s):
    i = 0
    while ("layer%d.%d.conv1.weight" % (s + 1, i)) in sd:
        i += 1
    return i


def zero_pad_shortcut(x, stride, out):
    """He et al. 2015 option A: subsample, then zero channels split evenly before and after."""
    x = x[:, :, ::stride, ::stride]
    extra = out - x.shape[1]
    return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))


def head(h, sd):
    return F.linear(F.adaptive_avg_pool2d(h, 1).flatten(1), sd["fc.weight"], sd["fc.bias"])


def post_activation_resnet(sd, x):
    """He et al. 2015 CIFAR ResNet (option A or B) and ResNeXt-29 (Xie et al. 2017, fb ResNeXt code):
    conv-BN-ReLU stem; units relu(F(x) + shortcut(x)); stride on the 3x3, grouped when the
    weight's input channels say so; projection = 1x1 conv + BN."""
    h = F.relu(bn(F.conv2d(x, sd["conv1.weight"], padding=1), sd, "bn1"))
    for s in range(stages(sd)):
        for b in range(units(sd, s)):
            p = "layer%d.%d" % (s + 1, b)
            stride = 2 if s > 0 and b == 0 else 1
            if p + ".conv3.weight" in sd:
                f = F.relu(bn(F.conv2d(h, sd[p + ".conv1.weight"]), sd, p + ".bn1"))
                w = sd[p + ".conv2.weight"]
                f = F.relu(bn(F.conv2d(f, w, stride=stride, padding=1, groups=f.shape[1] // w.shape[1]), sd, p + ".bn2"))
                f = bn(F.conv2d(f, sd[p + ".conv3.weight"]), sd, p + ".bn3")
            else:
                f = F.relu(bn(F.conv2d(h, sd[p + ".conv1.weight"], stride=stride, padding=1), sd, p + ".bn1"))
                f = bn(F.conv2d(f, sd[p + ".conv2.weight"], padding=1), sd, p + ".bn2")
            if p + ".downsample.0.weight" in sd:
                sc = bn(F.conv2d(h, sd[p + ".downsample.0.weight"], stride=stride), sd, p + ".downsample.1")
            elif f.shape != h.shape:
                sc = zero_pad_shortcut(h, stride, f.shape[1])
            else:
                sc = h
            h = F.relu(f + sc)
    return head(h, sd)


def preact_resnet(sd, x):
    """He et al. 2016 (fb.resnet.torch preresnet.lua, resnet-1k-layers) and WRN (Zagoruyko's code):
    bare conv stem; units F(BN-ReLU(x)) + shortcut, where the first unit of each stage feeds
    BN-ReLU(x) to its shortcut; bottleneck stride on the first 1x1; projection = bare 1x1 conv;
    BN-ReLU before the pool."""
    h = F.conv2d(x, sd["conv1.weight"], padding=1)
    for s in range(stages(sd)):
        for b in range(units(sd, s)):
            p = "layer%d.%d" % (s + 1, b)
            stride = 2 if s > 0 and b == 0 else 1
            a = F.relu(bn(h, sd, p + ".bn1"))
            if p + ".conv3.weight" in sd:
                f = F.conv2d(a, sd[p + ".conv1.weight"], stride=stride)
                f = F.conv2d(F.relu(bn(f, sd, p + ".bn2")), sd[p + ".conv2.weight"], padding=1)
                f = F.conv2d(F.relu(bn(f, sd, p + ".bn3")), sd[p + ".conv3.weight"])
            else:
                f = F.conv2d(a, sd[p + ".conv1.weight"], stride=stride, padding=1)
                f = F.conv2d(F.relu(bn(f, sd, p + ".bn2")), sd[p + ".conv2.weight"], padding=1)
            src = a if b == 0 else h
            if p + ".downsample.0.weight" in sd:
                sc = F.conv2d(src, sd[p + ".downsample.0.weight"], stride=stride)
            elif f.shape != src.shape:
                sc = zero_pad_shortcut(src, stride, f.shape[1])
            else:
                sc = src
            h = f + sc
    return head(F.relu(bn(h, sd, "bn_final")), sd)


def densenet_cifar(sd, x):
    """Huang et al. 2017 CIFAR DenseNet / DenseNet-BC (liuzhuang13's code): 3x3 stem conv; layers
    BN-ReLU-[1x1-BN-ReLU]-3x3 concatenated after their input; transitions BN-ReLU-1x1-avgpool2;
    BN-ReLU before the pool."""
    h = F.conv2d(x, sd["features.conv0.weight"], padding=1)
    blocks = count(sd, "features.denseblock%d.denselayer1.norm1.weight")
    for b in range(blocks):
        for i in range(count(sd, "features.denseblock" + str(b + 1) + ".denselayer%d.norm1.weight")):
            p = "features.denseblock%d.denselayer%d" % (b + 1, i + 1)
            y = F.relu(bn(h, sd, p + ".norm1"))
            if p + ".conv2.weight" in sd:
                y = F.conv2d(y, sd[p + ".conv1.weight"])
                y = F.conv2d(F.relu(bn(y, sd, p + ".norm2")), sd[p + ".conv2.weight"], padding=1)
            else:
                y = F.conv2d(y, sd[p + ".conv1.weight"], padding=1)
            h = torch.cat([h, y], 1)
        if b + 1 < blocks:
            p = "features.transition%d" % (b + 1)
            h = F.avg_pool2d(F.conv2d(F.relu(bn(h, sd, p + ".norm")), sd[p + ".conv.weight"]), 2)
    h = F.relu(bn(h, sd, "features.norm5"))
    return F.linear(F.adaptive_avg_pool2d(h, 1).flatten(1), sd["classifier.weight"], sd["classifier.bias"])


def cifar(directory, names):
    torch.set_num_threads(2)
    for name in names:
        sd = read_safetensors("%s/resin_%s.safetensors" % (directory, name))
        x = sd.pop("input")
        if name.startswith("densenet"):
            net = densenet_cifar
        elif name.startswith("preact") or name.startswith("wrn"):
            net = preact_resnet
        else:
            net = post_activation_resnet
        with torch.no_grad():
            write_safetensors("%s/ref_%s.safetensors" % (directory, name), {"logits": net(sd, x)})
        print("%s: done" % name, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "counts":
        counts(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "interchange":
        interchange(sys.argv[2], sys.argv[3:])
    elif sys.argv[1] == "cifar":
        cifar(sys.argv[2], sys.argv[3:])
    else:
        print("unknown command %r" % sys.argv[1])
        sys.exit(2)
