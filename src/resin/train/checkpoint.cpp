#include "resin/train/checkpoint.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "resin/core/rng.h"
#include "resin/io/atomic_file.h"
#include "resin/io/safetensors.h"

namespace resin::train {

namespace {
constexpr const char* kFormat = "resin-checkpoint";
constexpr const char* kVersion = "1";

int64_t meta_int(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path,
                 bool required = true) {
  auto it = m.find(key);
  if (it == m.end() && !required) return 0;
  RESIN_CHECK(it != m.end(), "checkpoint ", path, ": metadata has no '", key, "'");
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  RESIN_CHECK(end && *end == '\0' && !it->second.empty() && errno == 0 && v >= 0, "checkpoint ", path,
              ": metadata '", key, "' is not a non-negative integer: '", it->second, "'");
  return v;
}
}  // namespace

void save_checkpoint(const std::string& path, const CheckpointInfo& info, const nn::Module& model,
                     const std::map<std::string, Tensor>& optim_state) {
  io::atomic_write_file(path, serialize_checkpoint(info, model, optim_state));
}

std::string serialize_checkpoint(const CheckpointInfo& info, const nn::Module& model,
                                 const std::map<std::string, Tensor>& optim_state) {
  std::map<std::string, Tensor> tensors;
  for (auto& [n, t] : model.state_dict()) tensors["model." + n] = t;
  for (auto& [n, t] : optim_state) tensors["optim." + n] = t;
  char best[64];
  std::snprintf(best, sizeof best, "%.17g", info.best_top1);
  std::map<std::string, std::string> meta{{"format", kFormat},
                                          {"version", kVersion},
                                          {"model", info.model_name},
                                          {"in_channels", std::to_string(info.in_channels)},
                                          {"num_classes", std::to_string(info.num_classes)},
                                          {"epoch", std::to_string(info.epoch)},
                                          {"step", std::to_string(info.step)},
                                          {"skipped_steps", std::to_string(info.skipped_steps)},
                                          {"best_top1", best},
                                          {"rng", info.rng_state},
                                          {"config", info.config_json}};
  return io::serialize_safetensors(tensors, meta);
}

Checkpoint load_checkpoint(const std::string& path) { return parse_checkpoint(io::read_file(path), path); }

Checkpoint parse_checkpoint(const std::string& bytes, const std::string& path) {
  io::SafetensorsFile f = io::parse_safetensors(bytes, path);
  auto meta = [&](const char* key) { return f.metadata.count(key) ? f.metadata.at(key) : std::string(); };
  RESIN_CHECK(meta("format") == kFormat, "checkpoint ", path,
              ": not a resin training checkpoint (no format=resin-checkpoint in its metadata); "
              "for weights-only files use --weights");
  RESIN_CHECK(meta("version") == kVersion, "checkpoint ", path, ": unsupported checkpoint version '",
              meta("version"), "'");
  Checkpoint c;
  c.info.model_name = meta("model");
  c.info.in_channels = meta_int(f.metadata, "in_channels", path);
  c.info.num_classes = meta_int(f.metadata, "num_classes", path);
  c.info.epoch = meta_int(f.metadata, "epoch", path);
  c.info.step = meta_int(f.metadata, "step", path);
  c.info.skipped_steps = meta_int(f.metadata, "skipped_steps", path, false);
  if (f.metadata.count("best_top1")) {
    const std::string& b = f.metadata.at("best_top1");
    char* end = nullptr;
    c.info.best_top1 = std::strtod(b.c_str(), &end);
    RESIN_CHECK(!b.empty() && end && *end == '\0' && std::isfinite(c.info.best_top1), "checkpoint ", path,
                ": metadata 'best_top1' is not a finite number: '", b, "'");
  }
  c.info.rng_state = meta("rng");
  if (!c.info.rng_state.empty()) {
    try {
      Generator probe;
      probe.set_state(c.info.rng_state);
    } catch (const Error& e) {
      RESIN_FAIL("checkpoint ", path, ": metadata 'rng' is not a valid generator state (", e.what(), ")");
    }
  }
  c.info.config_json = meta("config");
  for (auto& [n, t] : f.tensors) {
    if (n.rfind("model.", 0) == 0) c.model[n.substr(6)] = t;
    else if (n.rfind("optim.", 0) == 0) c.optim[n.substr(6)] = t;
    else RESIN_FAIL("checkpoint ", path, ": unexpected tensor '", n, "' (expected model.* or optim.*)");
  }
  RESIN_CHECK(!c.model.empty(), "checkpoint ", path, ": holds no model weights");
  return c;
}

void restore_training_state(const Checkpoint& ck, const std::string& path, nn::Module& model,
                            optim::Optimizer& opt, optim::LrScheduler& sched, optim::LossScaler* scaler) {
  try {
    model.load_state_dict(ck.model, true);
    std::map<std::string, Tensor> opt_state, sched_state, scaler_state;
    const std::string kSched = "scheduler.", kScaler = "loss_scaler.";
    for (auto& [k, v] : ck.optim) {
      if (k.rfind(kSched, 0) == 0)
        sched_state[k.substr(kSched.size())] = v;
      else if (k.rfind(kScaler, 0) == 0)
        scaler_state[k.substr(kScaler.size())] = v;
      else opt_state[k] = v;
    }
    opt.load_state_dict(opt_state);
    sched.load_state_dict(sched_state);
    // A static scale is the run's --loss-scale, not state: it stays as given.
    if (scaler && scaler->dynamic() && !scaler_state.empty()) scaler->load_state_dict(scaler_state);
    default_generator().set_state(ck.info.rng_state);
  } catch (const Error& e) {
    RESIN_FAIL("checkpoint ", path, ": cannot restore the training state: ", e.what());
  }
}

void save_weights(const std::string& path, const nn::Module& model) {
  io::save_safetensors(path, model.state_dict(), {{"format", "pt"}});
}

std::map<std::string, Tensor> load_weights(const std::string& path) {
  auto f = io::load_safetensors(path);
  // A training checkpoint also works here: take its model.* tensors.
  if (f.metadata.count("format") && f.metadata.at("format") == kFormat) return load_checkpoint(path).model;
  return f.tensors;
}

}  // namespace resin::train
