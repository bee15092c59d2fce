// Checkpoints. A training checkpoint is ONE safetensors file (written atomically) holding
//   model.<torchvision name>   every parameter and buffer
//   optim.<key>                optimizer state (momentum buffers, step counts), optim.scheduler.*
//                              (the schedule's step), optim.loss_scaler.* (optim/loss_scaler.h)
// and, in the metadata, everything else a resumed run needs: format version, model name and
// shape arguments, epoch, global step, scheduler step, generator state, best accuracy so far.
// Weights alone (`weights.safetensors`) use torchvision's names with no prefix, so they load in
// PyTorch with `model.load_state_dict(safetensors_dict)`.
#pragma once
#include <map>
#include <string>

#include "resin/nn/module.h"
#include "resin/optim/loss_scaler.h"
#include "resin/optim/lr_schedule.h"
#include "resin/optim/optimizer.h"

namespace resin::train {

struct CheckpointInfo {
  std::string model_name;
  int64_t in_channels = 0, num_classes = 0;
  int64_t epoch = 0;         // epochs completed
  int64_t step = 0;          // optimizer steps completed
  int64_t skipped_steps = 0; // steps skipped for non-finite values (--skip-nonfinite); 0 if absent
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
// The bytes save_checkpoint writes.
std::string serialize_checkpoint(const CheckpointInfo& info, const nn::Module& model,
                                 const std::map<std::string, Tensor>& optim_state);
// Throws resin::Error naming the file when it is missing, truncated, corrupt or not a resin checkpoint:
// the safetensors validation (io/safetensors.h), then format/version, integer fields that parse
// completely and are non-negative, best_top1 a finite number, a generator state that
// Generator::set_state accepts, and only model.* / optim.* tensors (at least one model.*).
Checkpoint load_checkpoint(const std::string& path);
// The same on a file's bytes; `source` names them in errors.
Checkpoint parse_checkpoint(const std::string& bytes, const std::string& source);

// What --resume does with a loaded checkpoint: loads the weights (strict) into `model`, the
// optim.* state into `opt`, its optim.scheduler.* entries into `sched`, its optim.loss_scaler.*
// entries into a dynamic `scaler` (when given and the checkpoint has them: a run resumed with loss
// scaling that had none starts the scaler afresh; a static scaler keeps the scale it was given;
// without a scaler they are not needed), and the generator
// state into default_generator(). Throws resin::Error naming `path` on any mismatch; the objects may
// then be partly loaded and must be discarded.
void restore_training_state(const Checkpoint& ck, const std::string& path, nn::Module& model,
                            optim::Optimizer& opt, optim::LrScheduler& sched,
                            optim::LossScaler* scaler = nullptr);

void save_weights(const std::string& path, const nn::Module& model);
std::map<std::string, Tensor> load_weights(const std::string& path);

}  // namespace resin::train
