// Checkpoints. A training checkpoint is ONE safetensors file (written atomically) holding
//   model.<torchvision name>   every parameter and buffer
//   optim.<key>                optimizer state (momentum buffers, step counts)
// and, in the metadata, everything else a resumed run needs: format version, model name and
// shape arguments, epoch, global step, scheduler step, generator state, best accuracy so far.
// Weights alone (`weights.safetensors`) use torchvision's names with no prefix, so they load in
// PyTorch with `model.load_state_dict(safetensors_dict)`.
#pragma once
#include <map>
#include <string>

#include "resin/nn/module.h"

namespace resin::train {

struct CheckpointInfo {
  std::string model_name;
  int64_t in_channels = 0, num_classes = 0;
  int64_t epoch = 0;         // epochs completed
  int64_t step = 0;          // optimizer steps completed
  double best_top1 = 0;      // best test top-1 so far (percent)
  std::string rng_state;     // default generator
  std::string config_json;   // the run's configuration, for the record
};

struct Checkpoint {
  CheckpointInfo info;
  std::map<std::string, Tensor> model;  // torchvision names
  std::map<std::string, Tensor> optim;
};

void save_checkpoint(const std::string& path, const CheckpointInfo& info, const nn::Module& model,
                     const std::map<std::string, Tensor>& optim_state);
// Throws resin::Error naming the file when it is missing, truncated, corrupt or not a resin checkpoint.
Checkpoint load_checkpoint(const std::string& path);

void save_weights(const std::string& path, const nn::Module& model);
std::map<std::string, Tensor> load_weights(const std::string& path);

}  // namespace resin::train
