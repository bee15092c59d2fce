#include "targets.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "resin/cli/args.h"
#include "resin/core/error.h"
#include "resin/core/rng.h"
#include "resin/data/cifar.h"
#include "resin/data/idx.h"
#include "resin/data/io.h"
#include "resin/io/json.h"
#include "resin/io/safetensors.h"
#include "resin/models/zoo.h"
#include "resin/ops/ops.h"
#include "resin/train/checkpoint.h"

namespace resin::fuzz {
namespace {

// Decompressed inputs stay small, so a gzip bomb is an error here rather than an out-of-memory.
constexpr uint64_t kMaxDecoded = uint64_t{1} << 24;

[[noreturn]] void violated(const char* target, const std::string& what) {
  std::fprintf(stderr, "fuzz_%s: invariant violated: %s\n", target, what.c_str());
  std::abort();
}

void require(bool ok, const char* target, const std::string& what) {
  if (!ok) violated(target, what);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const size_t n = static_cast<size_t>(a.numel()) * dtype_size(a.dtype());
  return n == 0 || std::memcmp(a.raw_data(), b.raw_data(), n) == 0;
}

// Writes a JSON value back as text (numbers with round-trip precision) for the round-trip check.
std::string dump(const io::JsonValue& v) {
  using K = io::JsonValue::Kind;
  switch (v.kind) {
    case K::null: return "null";
    case K::boolean: return v.boolean ? "true" : "false";
    case K::integer: return std::to_string(v.integer);
    case K::number: {
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", v.number);
      // %.17g may print an integral double without a fraction; keep it a number, not an integer.
      std::string s = buf;
      if (s.find_first_of(".eE") == std::string::npos) s += ".0";
      return s;
    }
    case K::string: return io::json_quote(v.string);
    case K::array: {
      std::string s = "[";
      for (size_t i = 0; i < v.array.size(); ++i) s += (i ? "," : "") + dump(v.array[i]);
      return s + "]";
    }
    case K::object: {
      std::string s = "{";
      for (size_t i = 0; i < v.object.size(); ++i)
        s += (i ? "," : "") + io::json_quote(v.object[i].first) + ":" + dump(v.object[i].second);
      return s + "}";
    }
  }
  return "?";
}

bool same_json(const io::JsonValue& a, const io::JsonValue& b) {
  if (a.kind != b.kind || a.boolean != b.boolean || a.integer != b.integer || a.string != b.string ||
      a.array.size() != b.array.size() || a.object.size() != b.object.size())
    return false;
  if (a.kind == io::JsonValue::Kind::number && a.number != b.number) return false;
  for (size_t i = 0; i < a.array.size(); ++i)
    if (!same_json(a.array[i], b.array[i])) return false;
  for (size_t i = 0; i < a.object.size(); ++i)
    if (a.object[i].first != b.object[i].first || !same_json(a.object[i].second, b.object[i].second)) return false;
  return true;
}

}  // namespace

bool fuzz_safetensors(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  io::SafetensorsFile f;
  try {
    f = io::parse_safetensors(bytes, "fuzz.safetensors");
  } catch (const Error&) {
    return false;
  }
  const io::SafetensorsFile g = io::parse_safetensors(io::serialize_safetensors(f.tensors, f.metadata), "again");
  require(g.metadata == f.metadata && g.tensors.size() == f.tensors.size(), "safetensors",
          "re-serialised file differs");
  for (const auto& [name, t] : f.tensors)
    require(g.tensors.count(name) && same_bytes(t, g.tensors.at(name)), "safetensors", "tensor '" + name + "' differs");
  return true;
}

bool fuzz_json(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  io::JsonValue v;
  try {
    v = io::parse_json(text, "fuzz.json");
  } catch (const Error&) {
    return false;
  }
  const std::string again = dump(v);
  io::JsonValue w;
  try {
    w = io::parse_json(again, "again");
  } catch (const Error& e) {
    violated("json", std::string("re-dumped value does not parse: ") + e.what());
  }
  require(same_json(v, w), "json", "re-dumped value differs: " + again);
  return true;
}

bool fuzz_idx(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  const uint8_t mode = data[0];
  const bool images = mode & 1;
  const int64_t classes = (mode & 2) ? 10 : 0;
  const std::string name = (mode & 4) ? "fuzz-idx.gz" : "fuzz-idx";
  try {
    const std::vector<uint8_t> raw =
        data::decode_maybe_gz(std::vector<uint8_t>(data + 1, data + size), name, kMaxDecoded);
    if (images) {
      const Tensor t = data::parse_idx_images(raw, name);
      require(t.dim() == 4 && t.size(1) == 1 && static_cast<size_t>(t.numel()) + 16 == raw.size(), "idx",
              "image tensor does not match the payload");
    } else {
      const Tensor t = data::parse_idx_labels(raw, name, classes);
      require(t.dim() == 1 && static_cast<size_t>(t.numel()) + 8 == raw.size(), "idx", "label count mismatch");
      for (int64_t v : t.values<int64_t>())
        require(v >= 0 && (classes == 0 || v < classes), "idx", "label out of range");
    }
    return true;
  } catch (const Error&) {
    return false;
  }
}

bool fuzz_cifar(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  const int label_bytes = (data[0] & 1) ? 2 : 1;
  const int label_index = label_bytes == 2 ? (data[0] >> 1) & 1 : 0;
  const int64_t classes = label_bytes == 1 ? 10 : (label_index == 1 ? 100 : 20);
  const std::string name = (data[0] & 4) ? "fuzz.bin.gz" : "fuzz.bin";
  try {
    std::vector<std::vector<uint8_t>> files;
    files.push_back(data::decode_maybe_gz(std::vector<uint8_t>(data + 1, data + size), name, kMaxDecoded));
    const size_t bytes = files[0].size();
    const auto ds = data::parse_cifar_files(std::move(files), {name}, label_bytes, label_index, classes);
    require(static_cast<size_t>(ds->size()) * static_cast<size_t>(label_bytes + 3072) == bytes, "cifar",
            "record count mismatch");
    for (int64_t i : {int64_t{0}, ds->size() - 1}) {
      if (i < 0) continue;
      const data::Example e = ds->get(i);
      require(e.label >= 0 && e.label < classes && e.image.numel() == 3072, "cifar", "bad example");
    }
    return true;
  } catch (const Error&) {
    return false;
  }
}

TrainingSetup make_training_setup() {
  TrainingSetup s;
  manual_seed(1);
  s.model = models::create_model("mlp:width=8,depth=3", {.in_channels = 1, .num_classes = 4, .image_size = 4});
  s.opt = std::make_unique<optim::Sgd>(optim::weight_decay_param_groups(s.model->named_parameters(), 0.1, 5e-4),
                                       optim::SgdOptions{.momentum = 0.9, .nesterov = true});
  s.sched = std::make_unique<optim::LrScheduler>(
      *s.opt, optim::warmup_then(2, 0.1, std::make_shared<optim::CosineAnnealingLr>(10)));
  return s;
}

// One SGD step on a fixed batch.
void train_step(TrainingSetup& s) {
  Generator g(3);
  const Tensor x = randn({8, 1, 4, 4}, {}, &g);
  const Tensor y = randint(0, 4, {8}, {.dtype = DType::i64}, &g);
  cross_entropy(s.model->forward(x), y).backward();
  s.opt->step();
  s.opt->zero_grad();
  s.sched->step();
}

bool fuzz_checkpoint(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const train::Checkpoint ck = train::parse_checkpoint(bytes, "fuzz.ckpt");
    TrainingSetup s = make_training_setup();
    train::restore_training_state(ck, "fuzz.ckpt", *s.model, *s.opt, *s.sched);
    // The restored state must be usable: draws terminate, and a step runs.
    for (int i = 0; i < 4; ++i)
      require(std::isfinite(default_generator().normal()), "checkpoint", "normal() not finite");
    train_step(s);
    return true;
  } catch (const Error&) {
    return false;
  }
}

bool fuzz_cli(const uint8_t* data, size_t size) {
  std::vector<std::string> argv;
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      argv.push_back(cur);
      cur.clear();
    } else {
      cur += static_cast<char>(data[i]);
    }
  }
  if (!cur.empty()) argv.push_back(cur);
  cli::Args args("resin fuzz", "the option kinds of resin train");
  args.option("model", "resnet20", "network", "NAME")
      .option("epochs", "3", "number of epochs", "N")
      .option("lr", "0.1", "peak learning rate", "LR")
      .option("milestones", "", "epochs", "E1,E2")
      .option("seed", "0", "seed", "S")
      .flag("resume", "continue")
      .flag("skip-nonfinite", "skip")
      .required("out", "output directory", "DIR");
  try {
    if (!args.parse(argv)) return true;  // --help
    (void)args.get("model");
    (void)args.get_int("epochs", 1, 100000);
    (void)args.get_double("lr", 1e-12, 1e3);
    (void)args.get_int_list("milestones");
    (void)args.get_int("seed", 0);
    (void)args.get_flag("resume");
    (void)args.has("skip-nonfinite");
    (void)args.get("out");
    return true;
  } catch (const Error&) {
    return false;
  }
}

const std::map<std::string, FuzzTarget>& fuzz_targets() {
  static const std::map<std::string, FuzzTarget> kTargets = {
      {"safetensors", fuzz_safetensors}, {"json", fuzz_json}, {"idx", fuzz_idx},
      {"cifar", fuzz_cifar},             {"checkpoint", fuzz_checkpoint}, {"cli", fuzz_cli}};
  return kTargets;
}

}  // namespace resin::fuzz
