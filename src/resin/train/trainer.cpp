#include "resin/train/trainer.h"

#include <omp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>

#include "resin/autograd/grad_mode.h"
#include "resin/core/autocast.h"
#include "resin/distributed/ddp.h"
#include "resin/distributed/sync_batch_norm.h"
#include "resin/core/cuda.h"
#include "resin/io/atomic_file.h"
#include "resin/io/safetensors.h"
#include "resin/models/zoo.h"
#include "resin/optim/optim.h"
#include "resin/train/checkpoint.h"
#include "resin/train/data_setup.h"
#include "resin/train/metrics.h"
#include "resin/train/precision.h"
#include "resin/train/progress.h"

namespace resin::train {

namespace fs = std::filesystem;

std::string to_json(const TrainConfig& c) {
  std::string ms;
  for (size_t i = 0; i < c.milestones.size(); ++i) ms += (i ? "," : "") + std::to_string(c.milestones[i]);
  return train::to_json(JsonRecord{{"model", c.model},
                                   {"data", c.data},
                                   {"data_dir", c.data_dir},
                                   {"epochs", c.epochs},
                                   {"batch_size", c.batch_size},
                                   {"lr", c.lr},
                                   {"momentum", c.momentum},
                                   {"weight_decay", c.weight_decay},
                                   {"nesterov", c.nesterov},
                                   {"schedule", c.schedule},
                                   {"milestones", ms},
                                   {"warmup_epochs", c.warmup_epochs},
                                   {"label_smoothing", c.label_smoothing},
                                   {"augment", c.augment},
                                   {"seed", static_cast<int64_t>(c.seed)},
                                   {"threads", c.threads},
                                   {"train_subset", c.train_subset},
                                   {"test_subset", c.test_subset},
                                   {"clip_grad_norm", c.clip_grad_norm},
                                   {"channels_last", c.channels_last},
                                   {"world_size", static_cast<int64_t>(c.dist.world_size)},
                                   {"sync_bn", c.sync_bn},
                                   {"device", c.device},
                                   {"dtype", c.dtype},
                                   {"loss_scale", c.loss_scale}});
}

namespace {

std::shared_ptr<const data::Dataset> maybe_subset(std::shared_ptr<const data::Dataset> d, int64_t n) {
  if (n <= 0 || n >= d->size()) return d;
  return data::subset_first(d, n);
}

optim::LrSchedulePtr make_schedule(const TrainConfig& c, int64_t iters_per_epoch) {
  const int64_t total = c.epochs * iters_per_epoch;
  const auto warmup = static_cast<int64_t>(std::llround(c.warmup_epochs * static_cast<double>(iters_per_epoch)));
  optim::LrSchedulePtr main;
  if (c.schedule == "cosine") {
    main = std::make_shared<optim::CosineAnnealingLr>(std::max<int64_t>(1, total - warmup));
  } else if (c.schedule == "multistep") {
    std::vector<int64_t> ms = c.milestones;
    if (ms.empty()) ms = {c.epochs / 2, c.epochs * 3 / 4};
    auto its = optim::epochs_to_iterations(ms, iters_per_epoch);
    for (auto& m : its) m = std::max<int64_t>(0, m - warmup);
    main = std::make_shared<optim::MultiStepLr>(its, 0.1);
  } else if (c.schedule == "constant") {
    main = std::make_shared<optim::ConstantLr>();
  } else {
    RESIN_FAIL("unknown --schedule '", c.schedule, "' (expected cosine, multistep or constant)");
  }
  return optim::warmup_then(warmup, 0.1, main);
}

// A batch's images on the training device, in the layout the run asks for.
Tensor prepare_images(const Tensor& images, Device device, bool channels_last) {
  Tensor x = images.to(device);
  return channels_last ? x.contiguous(MemoryFormat::channels_last) : x;
}

// One GPU per process: in a data-parallel job plain "cuda" means the GPU of this process's local rank
// (as the NCCL communicator picks it); "cuda:N" is taken as given.
std::string rank_device(const std::string& name, const distributed::DistConfig& d) {
  if (name != "cuda" || d.world_size <= 1 || cuda::device_count() == 0) return name;
  return "cuda:" + std::to_string(d.local_rank % cuda::device_count());
}

// --dist-backend auto: NCCL in a build with it when every process of this machine gets a GPU of its
// own — plain "cuda" (the local rank's GPU, as the NCCL communicator takes it) and no more processes
// here (LOCAL_WORLD_SIZE, else the whole job) than GPUs — since NCCL refuses two ranks on one GPU.
// Gloo otherwise: it also serves processes sharing a GPU and an explicit cuda:N. Every rank of a job
// on like machines decides alike.
std::string auto_backend(const TrainConfig& c) {
  if (c.device != "cuda" || c.dist.world_size <= 1 || !distributed::nccl_available()) return "gloo";
  const int local = c.dist.local_world_size > 0 ? c.dist.local_world_size : c.dist.world_size;
  return local <= cuda::device_count() ? "nccl" : "gloo";
}

// Sums a meter over the ranks of a data-parallel job (all of them must call it at the same point).
RunningMeter all_reduce_meter(distributed::Communicator& comm, const RunningMeter& m) {
  if (comm.size() == 1) return m;
  Tensor t = from_vector({m.loss_sum(), static_cast<double>(m.counts().top1), static_cast<double>(m.counts().top5),
                          static_cast<double>(m.counts().count)},
                         {4}, {.dtype = DType::f64});
  comm.all_reduce(t);
  const auto v = t.to_vector();
  RunningMeter out;
  out.add(v[0], {std::llround(v[1]), std::llround(v[2]), std::llround(v[3])});
  return out;
}

EvalResult evaluate(nn::Module& model, data::DataLoader& loader, bool channels_last, Device device,
                    distributed::Communicator& comm, DType compute = DType::f32) {
  const auto t0 = std::chrono::steady_clock::now();
  NoGradGuard ng;
  AutocastGuard autocast(compute);
  const bool was_training = model.is_training();
  model.eval();
  RunningMeter meter;
  loader.start_epoch(0);
  while (auto b = loader.next()) {
    Tensor x = prepare_images(b->images, device, channels_last);
    Tensor logits = model.forward(x);
    Tensor loss = cross_entropy(logits, b->labels.to(device), {.reduction = Reduction::sum});
    meter.add(loss.item(), accuracy(logits, b->labels));
  }
  meter = all_reduce_meter(comm, meter);
  model.train(was_training);
  return {meter.loss(), meter.top1(), meter.top5(), meter.count(),
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// The module that owns a parameter path ("layer2.1.conv1.weight" -> "layer2.1.conv1").
std::string module_of(const std::string& param) {
  auto dot = param.rfind('.');
  return dot == std::string::npos ? "(root)" : param.substr(0, dot);
}

void set_threads(int64_t threads) {
  if (threads > 0) omp_set_num_threads(static_cast<int>(threads));
}

// Runs `setup` on this rank, then makes every rank agree that all succeeded: a rank whose setup
// failed rethrows its error, the others stop with a message pointing at it, instead of waiting
// for it in the first collective until the timeout.
template <class F>
void run_agreed(distributed::Communicator& comm, const std::string& what, F setup) {
  std::exception_ptr error;
  try {
    setup();
  } catch (...) {
    error = std::current_exception();
  }
  if (comm.size() > 1) {
    Tensor failed = from_vector({error ? 1.0 : 0.0, error ? static_cast<double>(comm.rank()) : 0.0}, {2},
                                {.dtype = DType::f64});
    comm.all_reduce(failed);
    const auto v = failed.to_vector();
    if (!error && v[0] > 0)
      RESIN_FAIL("distributed: ", static_cast<int64_t>(v[0]), " rank(s) failed to ", what,
                 v[0] == 1 ? " (rank " + std::to_string(std::llround(v[1])) + "; see its error)" : "; see their errors");
  }
  if (error) std::rethrow_exception(error);
}

// The pid in a temporary name of atomic_write_file, ".<name>.tmp-<pid>-<counter>-<random>" (all
// decimal), or 0 when `name` does not have exactly that shape (a user's own ".notes.tmp-old" stays).
long temporary_owner(const std::string& name) {
  const size_t tag = name.rfind(".tmp-");
  if (name.size() < 2 || name[0] != '.' || tag == std::string::npos || tag == 0) return 0;
  long pid = 0;
  int fields = 0;
  size_t i = tag + 5;
  while (i <= name.size()) {
    const size_t end = std::min(name.find('-', i), name.size());
    if (end == i || end - i > 18) return 0;
    for (size_t k = i; k < end; ++k)
      if (!std::isdigit(static_cast<unsigned char>(name[k]))) return 0;
    if (fields++ == 0) pid = std::strtol(name.c_str() + i, nullptr, 10);
    i = end + 1;
  }
  return fields == 3 ? pid : 0;
}

// Removes the temporaries that a killed atomic_write_file left in `dir`, except those of a process
// that is still alive on this machine. (A process on another machine writing into a shared
// directory is not seen; runs do not share an --out directory.)
void remove_stale_temporaries(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const long pid = temporary_owner(entry.path().filename().string());
    if (pid <= 0 || ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM) continue;  // not ours, or alive
    fs::remove(entry.path(), ec);
  }
}

// Records the order in which parameter gradients arrive during each backward pass, so a non-finite
// gradient can be traced to the first module (in backward order) where it appeared: every module
// before it in the forward pass inherits the NaN, so the first in registration order says nothing.
class GradArrival {
 public:
  explicit GradArrival(const std::vector<std::pair<std::string, Tensor>>& named)
      : order_(std::make_shared<std::vector<int64_t>>(named.size(), -1)), next_(std::make_shared<int64_t>(0)) {
    for (size_t i = 0; i < named.size(); ++i)
      if (named[i].second.requires_grad())
        named[i].second.register_hook([order = order_, next = next_, i](const Tensor&) {
          if ((*order)[i] < 0) (*order)[i] = (*next)++;
          return Tensor();
        });
  }
  void reset() {
    std::fill(order_->begin(), order_->end(), -1);
    *next_ = 0;
  }
  // Among the parameters named in `bad`, the one whose gradient arrived first.
  std::string first(const std::vector<std::pair<std::string, Tensor>>& named,
                    const std::vector<std::string>& bad) const {
    std::string best = bad.front();
    int64_t best_order = INT64_MAX;
    for (size_t i = 0; i < named.size(); ++i) {
      const int64_t o = (*order_)[i];
      if (o >= 0 && o < best_order && std::find(bad.begin(), bad.end(), named[i].first) != bad.end()) {
        best = named[i].first;
        best_order = o;
      }
    }
    return best;
  }

 private:
  std::shared_ptr<std::vector<int64_t>> order_;
  std::shared_ptr<int64_t> next_;
};

}  // namespace

TrainResult run_training(const TrainConfig& c) {
  RESIN_CHECK(c.epochs > 0, "--epochs must be positive, got ", c.epochs);
  RESIN_CHECK(c.batch_size > 0, "--batch-size must be positive, got ", c.batch_size);
  RESIN_CHECK(c.lr > 0 && std::isfinite(c.lr), "--lr must be a positive number, got ", c.lr);
  set_threads(c.threads);
  const Device device = cuda::usable_device(rank_device(c.device, c.dist));
  const DType compute = autocast_type(c.dtype, c.device);
  std::optional<optim::LossScaler> scaler = loss_scaler_for(c.loss_scale, compute);
  const auto t_start = std::chrono::steady_clock::now();
  // ---- data parallelism: join the job first, so every later failure can be agreed on
  const int world = c.dist.world_size;
  RESIN_CHECK(c.batch_size % world == 0, "--batch-size ", c.batch_size, " must be divisible by the number of processes (",
              world, "): it is the global batch, split evenly across them");
  distributed::DistConfig dist = c.dist;
  if (dist.backend == "auto") dist.backend = auto_backend(c);
  if (device.type == DeviceType::cuda) dist.gpu = device.index;  // NCCL works on the model's GPU
  auto comm = distributed::init_process_group(dist);
  const bool lead = comm->rank() == 0;  // the only rank that writes files and prints

  // ---- output directory: never overwrite a run unless resuming it
  const std::string last_path = c.out + "/last.ckpt", best_path = c.out + "/best.ckpt";
  bool have_last = false, restart = false;
  run_agreed(*comm, "check the output directory", [&] {
    if (lead) {
      std::error_code ec;
      fs::create_directories(c.out, ec);
      RESIN_CHECK(!ec, "cannot create the output directory ", c.out, ": ", ec.message());
      // Fail now rather than at the first checkpoint.
      RESIN_CHECK(::access(c.out.c_str(), W_OK) == 0, "cannot write into the output directory ", c.out, ": ",
                  std::strerror(errno), " (nothing in it was changed)");
    }
    have_last = fs::exists(last_path);
    // A run killed before its first checkpoint left config.json only: --resume starts it over.
    restart = c.resume && !have_last && fs::exists(c.out + "/config.json");
    RESIN_CHECK(!c.resume || have_last || restart, "--resume: no checkpoint to resume in ", c.out, " (expected ",
                last_path, ")", lead ? "" : " on this rank: is the output directory shared by every machine?");
    RESIN_CHECK(c.resume || !have_last || !lead, c.out, " already holds a run (", last_path,
                "). Pass --resume to continue it, or choose another --out.");
  });
  const bool resuming = c.resume && have_last;
  if (lead && restart)
    std::printf("--resume: %s has no checkpoint yet (the run stopped before its first); starting from the beginning\n",
                c.out.c_str());
  if (lead) remove_stale_temporaries(c.out);

  // ---- data: this rank's shard of every epoch (data/sampler.h)
  std::optional<DataSpec> data_spec;
  run_agreed(*comm, "load the data", [&] { data_spec = load_data(c.data, c.data_dir); });
  DataSpec& d = *data_spec;
  auto train_set = maybe_subset(d.train, c.train_subset), test_set = maybe_subset(d.test, c.test_subset);
  RESIN_CHECK(train_set->size() >= c.batch_size, "--batch-size ", c.batch_size, " is larger than the training set (",
              train_set->size(), " examples)");
  data::DataLoader train_loader(train_set,
                                {.batch_size = c.batch_size / world, .shuffle = true, .drop_last = true, .seed = c.seed,
                                 .num_workers = c.workers, .num_replicas = world, .rank = comm->rank()},
                                train_transform(d, c.augment));
  data::DataLoader test_loader(test_set, {.batch_size = 500, .num_workers = c.workers, .num_replicas = world,
                                          .rank = comm->rank(), .pad_shards = false},
                               test_transform(d));
  const int64_t ipe = train_loader.num_batches();

  // ---- model, optimizer, schedule
  manual_seed(c.seed);
  auto model = models::create_model(c.model, {.in_channels = d.channels, .num_classes = d.num_classes, .image_size = d.image_size});
  model->to(device);  // before the optimizer takes the parameter handles
  auto named = model->named_parameters();
  optim::Sgd opt(optim::weight_decay_param_groups(named, c.lr, c.weight_decay),
                 {.momentum = c.momentum, .nesterov = c.nesterov && c.momentum > 0});
  optim::LrScheduler sched(opt, make_schedule(c, ipe));

  int64_t start_epoch = 0, step = 0, skipped = 0;
  double best = 0;
  std::optional<Checkpoint> resumed;
  if (resuming)
    run_agreed(*comm, "load " + last_path, [&] {
      try {
        resumed = load_checkpoint(last_path);
      } catch (const Error& e) {
        // resin never leaves a torn checkpoint behind, so the file was damaged by something else.
        RESIN_FAIL("--resume: cannot load the checkpoint: ", e.what(), ". The file is damaged",
                   fs::exists(best_path) ? "; best.ckpt holds an older state: copy it over last.ckpt to resume from it"
                                         : "", ".");
      }
    });
  if (resuming) {
    Checkpoint& ck = *resumed;
    RESIN_CHECK(ck.info.model_name == c.model, "--resume: ", last_path, " holds a ", ck.info.model_name,
                ", not a ", c.model);
    restore_training_state(ck, last_path, *model, opt, sched, scaler ? &*scaler : nullptr);
    start_epoch = ck.info.epoch;
    step = ck.info.step;
    best = ck.info.best_top1;
    skipped = ck.info.skipped_steps;
    if (lead)
      std::printf("resuming %s from %s: epoch %lld, step %lld\n", c.model.c_str(), last_path.c_str(),
                  static_cast<long long>(start_epoch), static_cast<long long>(step));
    resumed.reset();
  } else if (lead) {
    io::atomic_write_file(c.out + "/config.json", to_json(c) + "\n");
  }
  auto metrics = lead ? std::make_unique<MetricsWriter>(c.out + "/metrics.jsonl", resuming ? step : -1)
                      : std::make_unique<MetricsWriter>();
  // Replicas: SyncBN (optional), then the gradient reducer, which also copies rank 0's state. One
  // process with --sync-bn runs the same kernel, so 1- and N-process runs compare exactly.
  if (c.sync_bn) distributed::convert_sync_batchnorm(*model, comm);
  std::unique_ptr<distributed::DistributedDataParallel> ddp;
  if (world > 1)
    ddp = std::make_unique<distributed::DistributedDataParallel>(
        *model, comm, distributed::DdpOptions{.bucket_bytes = std::max<int64_t>(1, std::llround(c.bucket_mb * (1 << 20)))});

  // The step of the checkpoint in last_path, for messages (-1: none yet).
  int64_t saved_step = resuming ? step : -1;
  auto kept_text = [&] {
    return saved_step < 0 ? std::string(" (none written yet)") : str_cat(" in ", last_path, " (step ", saved_step, ")");
  };
  // A failed write (disk full, directory not writable) leaves every previous file as it was.
  auto guarded = [&](const std::string& path, const std::function<void()>& write) {
    try {
      write();
    } catch (const Error& e) {
      RESIN_FAIL("could not save ", path, " at step ", step, ": ", e.what(), ". Training stopped; the last good ",
                 "checkpoint is kept", kept_text(), ". Free space or fix the directory, then run again with --resume.");
    }
  };
  auto save = [&](const std::string& path, int64_t epochs_done) {
    if (!lead) return;
    guarded(path, [&] {
      CheckpointInfo info{c.model,  d.channels, d.num_classes, epochs_done, step, skipped,
                          best,     default_generator().state(), to_json(c)};
      auto state = opt.state_dict();
      for (auto& [k, v] : sched.state_dict()) state["scheduler." + k] = v;
      if (scaler)
        for (auto& [k, v] : scaler->state_dict()) state["loss_scaler." + k] = v;
      save_checkpoint(path, info, *model, state);
    });
    if (path == last_path) saved_step = step;
  };
  GradArrival arrival(named);

  const bool interactive = c.progress < 0 ? Progress::stdout_is_terminal() : c.progress == 1;
  if (lead) {
    std::printf("training %s (%lld parameters) on %s: %lld train / %lld test images, %lld epochs x %lld steps, "
                "batch %lld, %d threads, on %s\n",
                c.model.c_str(), static_cast<long long>(model->parameter_count()), c.data.c_str(),
                static_cast<long long>(train_set->size()), static_cast<long long>(test_set->size()),
                static_cast<long long>(c.epochs), static_cast<long long>(ipe), static_cast<long long>(c.batch_size),
                omp_get_max_threads(), device.str().c_str());
    if (world > 1)
      std::printf("data parallel: %d processes (%s), %lld images each per step, %lld gradient buckets%s\n", world,
                  comm->backend().c_str(), static_cast<long long>(c.batch_size / world),
                  static_cast<long long>(ddp->num_buckets()), c.sync_bn ? ", synchronized BatchNorm" : "");
    if (compute != DType::f32)
      std::printf("mixed precision: %s autocast, f32 weights\n", dtype_name(compute));
    if (scaler)
      std::printf("loss scaling: %s, scale %g\n", scaler->dynamic() ? "dynamic" : "static",
                  scaler->scale_value());
    std::fflush(stdout);
  }

  TrainResult r;
  r.best_top1 = best;
  model->train();
  for (int64_t epoch = start_epoch; epoch < c.epochs; ++epoch) {
    const int64_t first_batch = epoch == start_epoch ? step - epoch * ipe : 0;
    RESIN_CHECK(first_batch >= 0 && first_batch <= ipe, "checkpoint step ", step, " does not fit epoch ", epoch,
                " of ", ipe, " steps (was the batch size or data changed?)");
    train_loader.start_epoch(epoch, first_batch);
    std::optional<Progress> bar;
    if (lead)
      bar.emplace("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(c.epochs), ipe, interactive,
                  std::max<int64_t>(1, ipe / 5));
    RunningMeter meter, window;
    auto t_window = std::chrono::steady_clock::now();
    int64_t window_images = 0;
    while (auto b = train_loader.next()) {
      const int64_t batch_index = b->index;
      Tensor x = prepare_images(b->images, device, c.channels_last);
      Tensor logits, loss;
      {
        AutocastGuard autocast(compute);  // the backward nodes remember it
        logits = model->forward(x);
        loss = cross_entropy(logits, b->labels.to(device), {.label_smoothing = c.label_smoothing});
      }
      const double loss_value = loss.item();
      bool skip = false;
      // Ranks must agree on skipping (a skipped backward would leave the others waiting).
      bool loss_finite = std::isfinite(loss_value);
      if (world > 1) {
        Tensor bad = from_vector({loss_finite ? 0.0 : 1.0}, {1}, {.dtype = DType::f64});
        comm->all_reduce(bad);
        loss_finite = bad.item() == 0;
      }
      if (!loss_finite) {
        RESIN_CHECK(c.skip_nonfinite, "non-finite loss (", loss_value, world > 1 ? " here; non-finite on some rank" : "",
                    ") at step ", step + 1, " (epoch ", epoch + 1, ", batch ", batch_index + 1,
                    "). Training stopped; the last good checkpoint is kept", kept_text(),
                    ". Lower --lr, add --clip-grad-norm, or pass --skip-nonfinite.");
        skip = true;
      }
      bool overflow = false;
      if (!skip) {
        arrival.reset();
        (scaler ? scaler->scale(loss) : loss).backward();
        if (ddp) ddp->synchronize_gradients();  // every rank now holds the averaged gradients
        if (c.after_backward) c.after_backward(step + 1, named);
        // Overflow of a scaled loss: skip the step and back off. At a scale <= 1 no scaling is to
        // blame, so that is an ordinary non-finite gradient.
        const bool unscaled = scaler && scaler->unscale(named);  // every gradient finite, now unscaled
        overflow = scaler && !unscaled && scaler->dynamic() && scaler->scale_value() > 1;
        // unscale() has checked every gradient already; names are needed only for a non-finite one.
        auto bad = overflow || unscaled ? std::vector<std::string>{} : optim::nonfinite_grads(named);
        if (!bad.empty()) {
          const std::string first = arrival.first(named, bad);
          RESIN_CHECK(c.skip_nonfinite, "non-finite gradient at step ", step + 1, " (epoch ", epoch + 1, ", batch ",
                      batch_index + 1, "): first in module '", module_of(first), "' (parameter ", first,
                      ", in backward order; ", bad.size(), " of ", named.size(),
                      " parameters affected). Training stopped; the last good checkpoint is kept", kept_text(),
                      ". Lower --lr, add --clip-grad-norm, or pass --skip-nonfinite to skip such steps.");
          skip = true;
        }
      }
      // The scale moves on taken steps (growth) and overflows (back-off); a step skipped for a
      // non-finite loss or an ordinary non-finite gradient leaves it.
      if (scaler && (overflow || !skip)) scaler->update();
      if (overflow) {
        opt.zero_grad();
      } else if (skip) {
        opt.zero_grad();
        ++skipped;
        if (lead)
          std::printf("\nskipping step %lld: non-finite loss or gradient (%lld skipped so far)\n",
                      static_cast<long long>(step + 1), static_cast<long long>(skipped));
      } else {
        if (c.clip_grad_norm > 0) optim::clip_grad_norm(named, c.clip_grad_norm);
        opt.step();
        opt.zero_grad();
      }
      sched.step();
      ++step;
      const auto acc = accuracy(logits, b->labels);
      meter.add(loss_value * static_cast<double>(acc.count), acc);
      window.add(loss_value * static_cast<double>(acc.count), acc);
      window_images += acc.count;
      const double lr = opt.param_groups()[0].lr;
      if (bar)
        bar->update(batch_index + 1, "loss " + fmt("%.4f", meter.loss()) + " acc " + fmt("%.2f%%", meter.top1()) +
                                         " lr " + fmt("%.4g", lr));
      if (step % c.log_every == 0) {
        window = all_reduce_meter(*comm, window);
        window_images = window.count();
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_window).count();
        JsonRecord rec{{"kind", std::string("train")},
                       {"epoch", epoch + 1},
                       {"step", step},
                       {"loss", window.loss()},
                       {"top1", window.top1()},
                       {"top5", window.top5()},
                       {"lr", lr},
                       {"images_per_s", static_cast<double>(window_images) / std::max(secs, 1e-9)},
                       {"skipped_steps", skipped}};
        if (scaler) {
          rec.emplace_back("loss_scale", scaler->scale_value());
          rec.emplace_back("overflow_steps", scaler->overflow_steps());
        }
        metrics->write(rec);
        window = RunningMeter();
        window_images = 0;
        t_window = std::chrono::steady_clock::now();
      }
      if (c.checkpoint_every > 0 && step % c.checkpoint_every == 0 && batch_index + 1 < ipe) save(last_path, epoch);
      if (c.max_steps > 0 && step >= c.max_steps) break;
    }
    const bool stopped_early = c.max_steps > 0 && step >= c.max_steps && step < (epoch + 1) * ipe;
    meter = all_reduce_meter(*comm, meter);
    if (bar) bar->finish("loss " + fmt("%.4f", meter.loss()) + " acc " + fmt("%.2f%%", meter.top1()));
    if (ddp) ddp->broadcast_buffers();  // evaluate and save rank 0's running statistics on every rank
    EvalResult ev = evaluate(*model, test_loader, c.channels_last, device, *comm, compute);
    if (lead)
      std::printf("epoch %lld/%lld: test loss %.4f, top-1 %.2f%%, top-5 %.2f%% (%lld images, %.1fs)\n",
                static_cast<long long>(epoch + 1), static_cast<long long>(c.epochs), ev.loss, ev.top1, ev.top5,
                static_cast<long long>(ev.count), ev.seconds);
    std::fflush(stdout);
    metrics->write({{"kind", std::string("eval")}, {"epoch", epoch + 1}, {"step", step}, {"loss", ev.loss},
                    {"top1", ev.top1}, {"top5", ev.top5}, {"train_loss", meter.loss()}, {"train_top1", meter.top1()},
                    {"skipped_steps", skipped}});
    r.test_loss = ev.loss;
    r.test_top1 = ev.top1;
    r.test_top5 = ev.top5;
    r.epochs_done = stopped_early ? epoch : epoch + 1;
    const bool improved = ev.top1 > best;
    if (improved) best = ev.top1;
    if (!stopped_early) {
      // last.ckpt goes last: it is the commit point. A run killed before it resumes from the older
      // checkpoint and writes best.ckpt and the weights again; the other order could lose them.
      if (improved) save(best_path, epoch + 1);
      const std::string weights_path = c.out + "/weights.safetensors";
      if (lead) guarded(weights_path, [&] { save_weights(weights_path, *model); });
      save(last_path, epoch + 1);
    }
    if (stopped_early) break;
  }
  r.best_top1 = best;
  r.steps = step;
  if (ddp) {
    const auto st = ddp->stats();
    r.all_reduce_seconds = st.all_reduce_seconds;
    r.all_reduce_wait_seconds = st.wait_seconds;
    if (lead)
      std::printf("gradient all-reduce: %lld steps, %.1f MB each in %lld buckets; ran %.2f s, training waited %.2f s "
                  "(%.0f%% hidden behind backward)\n",
                  static_cast<long long>(st.iterations), static_cast<double>(st.bytes_per_iteration) / 1e6,
                  static_cast<long long>(st.buckets), st.all_reduce_seconds, st.wait_seconds,
                  100.0 * st.hidden_fraction());
  }
  r.skipped_steps = skipped;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return r;
}

EvalResult evaluate_file(const std::string& path, const std::string& data_name, const std::string& data_dir,
                         const std::string& model_name, int64_t batch_size, int64_t threads,
                         const std::string& device_name) {
  set_threads(threads);
  const Device device = cuda::usable_device(device_name);
  DataSpec d = load_data(data_name, data_dir);
  std::string name = model_name;
  std::map<std::string, Tensor> weights;
  auto f = io::load_safetensors(path);
  if (f.metadata.count("format") && f.metadata.at("format") == "resin-checkpoint") {
    Checkpoint ck = load_checkpoint(path);
    RESIN_CHECK(name.empty() || name == ck.info.model_name, "--model ", name, " does not match the checkpoint's model ",
                ck.info.model_name);
    name = ck.info.model_name;
    RESIN_CHECK(ck.info.in_channels == d.channels && ck.info.num_classes == d.num_classes, "checkpoint ", path,
                " was trained for ", ck.info.in_channels, "-channel inputs and ", ck.info.num_classes,
                " classes; --data ", data_name, " has ", d.channels, " and ", d.num_classes);
    weights = std::move(ck.model);
  } else {
    RESIN_CHECK(!name.empty(), path, " holds weights only; say which network they belong to with --model NAME");
    weights = std::move(f.tensors);
  }
  auto model = models::create_model(name, {.in_channels = d.channels, .num_classes = d.num_classes, .image_size = d.image_size});
  model->to(device);
  model->load_state_dict(weights, true);
  data::DataLoader loader(d.test, {.batch_size = batch_size, .num_workers = 1}, test_transform(d));
  return evaluate(*model, loader, false, device, *distributed::make_single_process_communicator());
}

}  // namespace resin::train
