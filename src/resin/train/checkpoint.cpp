#include "resin/train/checkpoint.h"

#include <cstdlib>

#include "resin/io/safetensors.h"

namespace resin::train {

namespace {
constexpr const char* kFormat = "resin-checkpoint";
constexpr const char* kVersion = "1";

int64_t meta_int(const std::map<std::string, std::string>& m, const std::string& key, const std::string& path) {
  auto it = m.find(key);
  RESIN_CHECK(it != m.end(), "checkpoint ", path, ": metadata has no '", key, "'");
  char* end = nullptr;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  RESIN_CHECK(end && *end == '\0' && !it->second.empty(), "checkpoint ", path, ": metadata '", key,
              "' is not an integer: '", it->second, "'");
  return v;
}
}  // namespace

void save_checkpoint(const std::string& path, const CheckpointInfo& info, const nn::Module& model,
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
                                          {"best_top1", best},
                                          {"rng", info.rng_state},
                                          {"config", info.config_json}};
  io::save_safetensors(path, tensors, meta);
}

Checkpoint load_checkpoint(const std::string& path) {
  io::SafetensorsFile f = io::load_safetensors(path);
  auto fmt = f.metadata.find("format");
  RESIN_CHECK(fmt != f.metadata.end() && fmt->second == kFormat, "checkpoint ", path,
              ": not a resin training checkpoint (no format=resin-checkpoint in its metadata); "
              "for weights-only files use --weights");
  RESIN_CHECK(f.metadata.count("version") && f.metadata.at("version") == kVersion, "checkpoint ", path,
              ": unsupported checkpoint version '", f.metadata.count("version") ? f.metadata.at("version") : "", "'");
  Checkpoint c;
  c.info.model_name = f.metadata.count("model") ? f.metadata.at("model") : "";
  c.info.in_channels = meta_int(f.metadata, "in_channels", path);
  c.info.num_classes = meta_int(f.metadata, "num_classes", path);
  c.info.epoch = meta_int(f.metadata, "epoch", path);
  c.info.step = meta_int(f.metadata, "step", path);
  c.info.best_top1 = f.metadata.count("best_top1") ? std::strtod(f.metadata.at("best_top1").c_str(), nullptr) : 0.0;
  c.info.rng_state = f.metadata.count("rng") ? f.metadata.at("rng") : "";
  c.info.config_json = f.metadata.count("config") ? f.metadata.at("config") : "";
  for (auto& [n, t] : f.tensors) {
    if (n.rfind("model.", 0) == 0) c.model[n.substr(6)] = t;
    else if (n.rfind("optim.", 0) == 0) c.optim[n.substr(6)] = t;
    else RESIN_FAIL("checkpoint ", path, ": unexpected tensor '", n, "' (expected model.* or optim.*)");
  }
  RESIN_CHECK(!c.model.empty(), "checkpoint ", path, ": holds no model weights");
  return c;
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
