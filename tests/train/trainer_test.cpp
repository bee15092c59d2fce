// End-to-end tests of the trainer on real Fashion-MNIST subsets (dataset-fashion-mnist).
#include "resin/train/trainer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "resin/io/atomic_file.h"
#include "resin/io/json.h"
#include "resin/train/checkpoint.h"
#include "resin/train/precision.h"

using namespace resin;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("resin_trainer_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  return d;
}

double num(const io::JsonValue& rec, const char* key) {
  const io::JsonValue* v = rec.find(key);
  EXPECT_NE(v, nullptr) << key;
  if (!v) return 0;
  return v->kind == io::JsonValue::Kind::integer ? static_cast<double>(v->integer) : v->number;
}

std::string str(const io::JsonValue& rec, const char* key) {
  const io::JsonValue* v = rec.find(key);
  return v ? v->string : "";
}

std::vector<io::JsonValue> read_jsonl(const fs::path& p) {
  std::ifstream f(p);
  std::vector<io::JsonValue> out;
  std::string line;
  while (std::getline(f, line)) out.push_back(io::parse_json(line, p.string()));
  return out;
}

train::TrainConfig small_config(const fs::path& out) {
  train::TrainConfig c;
  c.out = out.string();
  c.batch_size = 32;
  c.train_subset = 512;
  c.test_subset = 200;
  c.epochs = 2;
  c.threads = 2;
  c.workers = 1;
  c.progress = 0;
  c.log_every = 4;
  return c;
}

}  // namespace

TEST(Trainer, SmokeLossFallsWellBelowItsStart) {
  auto dir = fresh_dir("smoke");
  train::TrainConfig c = small_config(dir);
  c.train_subset = 6400;
  c.epochs = 1;  // 200 steps
  c.log_every = 20;
  train::TrainResult r = train::run_training(c);
  EXPECT_EQ(r.steps, 200);
  auto recs = read_jsonl(dir / "metrics.jsonl");
  ASSERT_GE(recs.size(), 3u);
  const double first = num(recs.front(), "loss");
  double last = 0;
  for (auto& rec : recs)
    if (str(rec, "kind") == "train") last = num(rec, "loss");
  EXPECT_GT(first, 1.5) << "the first window should be near chance (ln 10 = 2.3)";
  EXPECT_LT(last, 0.6 * first) << "loss went from " << first << " to " << last;
  EXPECT_GT(r.test_top1, 60.0);
  for (const char* f : {"config.json", "metrics.jsonl", "last.ckpt", "best.ckpt", "weights.safetensors"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  fs::remove_all(dir);
}

TEST(Trainer, ResumeIsBitwiseIdenticalToAnUninterruptedRun) {
  auto straight = fresh_dir("straight"), split = fresh_dir("split");
  train::TrainConfig a = small_config(straight);
  train::run_training(a);

  train::TrainConfig b = small_config(split);
  b.max_steps = 16;  // exactly one epoch of 512/32 steps, then stop
  train::TrainResult r1 = train::run_training(b);
  EXPECT_EQ(r1.epochs_done, 1);
  b.max_steps = 0;
  b.resume = true;
  train::TrainResult r2 = train::run_training(b);
  EXPECT_EQ(r2.epochs_done, 2);
  EXPECT_EQ(r2.steps, 32);

  const std::string wa = io::read_file((straight / "weights.safetensors").string());
  const std::string wb = io::read_file((split / "weights.safetensors").string());
  EXPECT_TRUE(wa == wb) << "resumed weights differ from the uninterrupted run";
  auto ca = train::load_checkpoint((straight / "last.ckpt").string());
  auto cb = train::load_checkpoint((split / "last.ckpt").string());
  ASSERT_EQ(ca.optim.size(), cb.optim.size());
  for (auto& [k, t] : ca.optim) EXPECT_EQ(t.to_vector(), cb.optim.at(k).to_vector()) << k;
  fs::remove_all(straight);
  fs::remove_all(split);
}

TEST(Trainer, MidEpochCheckpointResumesExactly) {
  auto straight = fresh_dir("mid_straight"), split = fresh_dir("mid_split");
  train::TrainConfig a = small_config(straight);
  a.epochs = 1;
  train::run_training(a);
  train::TrainConfig b = small_config(split);
  b.epochs = 1;
  b.checkpoint_every = 5;
  b.max_steps = 11;  // killed after step 11; the last checkpoint is from step 10
  train::run_training(b);
  EXPECT_EQ(train::load_checkpoint((split / "last.ckpt").string()).info.step, 10);
  b.max_steps = 0;
  b.resume = true;
  train::run_training(b);
  EXPECT_TRUE(io::read_file((straight / "weights.safetensors").string()) ==
              io::read_file((split / "weights.safetensors").string()));
  fs::remove_all(straight);
  fs::remove_all(split);
}

TEST(Trainer, RefusesToOverwriteOrResumeNothing) {
  auto dir = fresh_dir("refuse");
  train::TrainConfig c = small_config(dir);
  c.resume = true;
  try {
    train::run_training(c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no checkpoint to resume"), std::string::npos) << e.what();
  }
  c.resume = false;
  c.epochs = 1;
  c.max_steps = 16;
  train::run_training(c);
  const std::string before = io::read_file((dir / "last.ckpt").string());
  try {
    train::run_training(c);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already holds a run"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(before == io::read_file((dir / "last.ckpt").string()));
  fs::remove_all(dir);
}

TEST(Trainer, NonFiniteLossStopsNamingTheStepAndKeepsTheCheckpoint) {
  auto dir = fresh_dir("nan");
  train::TrainConfig c = small_config(dir);
  c.lr = 1e38;  // step 1 is computed with the initial weights; its update overflows what follows
  c.warmup_epochs = 0;
  c.checkpoint_every = 1;
  try {
    train::run_training(c);
    FAIL() << "expected the non-finite guard to stop training";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("non-finite"), std::string::npos) << m;
    EXPECT_NE(m.find("at step "), std::string::npos) << m;
    EXPECT_NE(m.find("last good checkpoint"), std::string::npos) << m;
  }
  // The checkpoint written before the failure is intact and loads.
  auto ck = train::load_checkpoint((dir / "last.ckpt").string());
  EXPECT_GE(ck.info.step, 1);
  fs::remove_all(dir);

  auto skip_dir = fresh_dir("nan_skip");
  c.out = skip_dir.string();
  c.checkpoint_every = 0;
  c.skip_nonfinite = true;
  c.epochs = 1;
  train::TrainResult r = train::run_training(c);
  EXPECT_GT(r.skipped_steps, 0);
  EXPECT_EQ(r.steps, 16);
  fs::remove_all(skip_dir);
}

TEST(Trainer, CheckpointFromAnotherModelListsMismatchedKeys) {
  auto dir = fresh_dir("other");
  train::TrainConfig c = small_config(dir);
  c.epochs = 1;
  c.max_steps = 16;
  train::run_training(c);
  try {
    train::evaluate_file((dir / "weights.safetensors").string(), "fashion-mnist", "", "resnet32", 500, 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("missing keys"), std::string::npos) << m;
    EXPECT_NE(m.find("layer1.3.conv1.weight"), std::string::npos) << m;
  }
  // A truncated checkpoint is an error naming the file, never a crash.
  const std::string ck = io::read_file((dir / "last.ckpt").string());
  const std::string cut = (dir / "cut.ckpt").string();
  io::atomic_write_file(cut, ck.substr(0, ck.size() / 2));
  try {
    train::evaluate_file(cut, "fashion-mnist", "", "", 500, 2);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cut.ckpt"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

namespace {
// Sets the first element of a parameter's gradient to NaN (a test hook, see TrainConfig::after_backward).
void poison(const Tensor& p) { p.grad().data<float>()[0] = std::numeric_limits<float>::quiet_NaN(); }
}  // namespace

TEST(Trainer, NonFiniteGradientNamesTheFirstModuleInBackwardOrder) {
  auto dir = fresh_dir("nan_grad");
  train::TrainConfig c = small_config(dir);
  c.model = "mlp:width=16,depth=3";
  c.epochs = 1;
  c.checkpoint_every = 2;
  std::string first_param, last_param;
  c.after_backward = [&](int64_t step, const std::vector<std::pair<std::string, Tensor>>& named) {
    if (step != 5) return;
    // The head's gradient arrives first in backward; the stem's last. Poison both.
    first_param = named.front().first;
    last_param = named.back().first;
    poison(named.front().second);
    poison(named.back().second);
  };
  try {
    train::run_training(c);
    FAIL() << "expected the non-finite guard to stop training";
  } catch (const Error& e) {
    const std::string m = e.what();
    const std::string module = last_param.substr(0, last_param.rfind('.'));
    const std::vector<std::string> parts = {"non-finite gradient at step 5", "first in module '" + module + "'",
                                            "parameter " + last_param, "2 of ", "last good checkpoint is kept in",
                                            "last.ckpt (step 4)", "--skip-nonfinite"};
    for (const std::string& part : parts)
      EXPECT_NE(m.find(part), std::string::npos) << "'" << part << "' not in: " << m;
    EXPECT_EQ(m.find("parameter " + first_param), std::string::npos) << m;
  }
  EXPECT_EQ(train::load_checkpoint((dir / "last.ckpt").string()).info.step, 4);
  fs::remove_all(dir);
}

TEST(Trainer, SkipNonfiniteSkipsAndCountsAcrossResume) {
  auto dir = fresh_dir("nan_grad_skip");
  train::TrainConfig c = small_config(dir);
  c.model = "mlp:width=16,depth=3";
  c.epochs = 1;
  c.skip_nonfinite = true;
  c.checkpoint_every = 4;
  c.max_steps = 4;
  c.after_backward = [](int64_t step, const std::vector<std::pair<std::string, Tensor>>& named) {
    if (step == 3 || step == 7) poison(named[named.size() / 2].second);
  };
  EXPECT_EQ(train::run_training(c).skipped_steps, 1);
  EXPECT_EQ(train::load_checkpoint((dir / "last.ckpt").string()).info.skipped_steps, 1);
  c.max_steps = 0;
  c.resume = true;
  const train::TrainResult r = train::run_training(c);
  EXPECT_EQ(r.skipped_steps, 2);
  EXPECT_EQ(r.steps, 16);
  EXPECT_EQ(train::load_checkpoint((dir / "last.ckpt").string()).info.skipped_steps, 2);
  const auto recs = read_jsonl(dir / "metrics.jsonl");
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(num(recs.back(), "skipped_steps"), 2);
  std::vector<double> train_steps;
  for (const auto& rec : recs)
    if (str(rec, "kind") == "train") train_steps.push_back(num(rec, "step"));
  EXPECT_EQ(train_steps, (std::vector<double>{4, 8, 12, 16}));
  fs::remove_all(dir);
}

namespace {
void overflow(const Tensor& p) { p.grad().data<float>()[0] = std::numeric_limits<float>::infinity(); }

double scaler_entry(const fs::path& ckpt, const std::string& key) {
  return train::load_checkpoint(ckpt.string()).optim.at("loss_scaler." + key).item();
}
}  // namespace

// Scaling by powers of two is exact, so a dynamic loss scale that never overflows trains the same
// weights bit for bit as no scaling at all: the unscaled gradients are the plain ones.
TEST(Trainer, DynamicLossScalingWithoutOverflowTrainsBitwiseLikeNone) {
  auto plain = fresh_dir("scale_none"), scaled = fresh_dir("scale_dynamic");
  train::TrainConfig a = small_config(plain);
  a.model = "mlp:width=16,depth=3";
  a.epochs = 1;
  train::run_training(a);
  train::TrainConfig b = small_config(scaled);
  b.model = "mlp:width=16,depth=3";
  b.epochs = 1;
  b.loss_scale = "dynamic";
  train::run_training(b);
  EXPECT_TRUE(io::read_file((plain / "weights.safetensors").string()) ==
              io::read_file((scaled / "weights.safetensors").string()));
  EXPECT_EQ(scaler_entry(scaled / "last.ckpt", "scale"), 65536.0);
  EXPECT_EQ(scaler_entry(scaled / "last.ckpt", "growth_tracker"), 16.0);
  fs::remove_all(plain);
  fs::remove_all(scaled);
}

TEST(Trainer, DynamicLossScalingSkipsOverflowStepsAndResumesExactly) {
  auto straight = fresh_dir("overflow_straight"), split = fresh_dir("overflow_split");
  auto config = [](const fs::path& out) {
    train::TrainConfig c = small_config(out);
    c.model = "mlp:width=16,depth=3";
    c.epochs = 1;
    c.loss_scale = "dynamic";
    c.after_backward = [](int64_t step, const std::vector<std::pair<std::string, Tensor>>& named) {
      if (step == 3 || step == 10) overflow(named[named.size() / 2].second);
    };
    return c;
  };
  const train::TrainResult r = train::run_training(config(straight));
  EXPECT_EQ(r.steps, 16);
  EXPECT_EQ(r.skipped_steps, 0) << "overflow steps are loss scaling at work, not --skip-nonfinite skips";
  EXPECT_EQ(scaler_entry(straight / "last.ckpt", "scale"), 16384.0);
  EXPECT_EQ(scaler_entry(straight / "last.ckpt", "overflow_steps"), 2.0);
  EXPECT_EQ(scaler_entry(straight / "last.ckpt", "growth_tracker"), 6.0);  // steps 11..16
  std::vector<double> scales;
  for (const auto& rec : read_jsonl(straight / "metrics.jsonl"))
    if (str(rec, "kind") == "train") scales.push_back(num(rec, "loss_scale"));
  EXPECT_EQ(scales, (std::vector<double>{32768, 32768, 16384, 16384}));  // logged every 4 steps

  train::TrainConfig c = config(split);
  c.checkpoint_every = 4;
  c.max_steps = 9;  // the checkpoint at step 8 holds the scale after one overflow
  train::run_training(c);
  EXPECT_EQ(scaler_entry(split / "last.ckpt", "scale"), 32768.0);
  c.max_steps = 0;
  c.resume = true;
  train::run_training(c);
  EXPECT_TRUE(io::read_file((straight / "weights.safetensors").string()) ==
              io::read_file((split / "weights.safetensors").string()));
  EXPECT_EQ(scaler_entry(split / "last.ckpt", "scale"), 16384.0);
  fs::remove_all(straight);
  fs::remove_all(split);
}

// A static --loss-scale is the run's setting, not state: a resumed run uses the one it is given.
TEST(Trainer, AStaticLossScaleIsTheResumedRunsOwn) {
  auto dir = fresh_dir("static_scale");
  train::TrainConfig c = small_config(dir);
  c.model = "mlp:width=16,depth=3";
  c.epochs = 1;
  c.loss_scale = "1024";
  c.checkpoint_every = 4;
  c.max_steps = 5;
  train::run_training(c);
  EXPECT_EQ(scaler_entry(dir / "last.ckpt", "scale"), 1024.0);
  c.loss_scale = "2048";
  c.max_steps = 0;
  c.resume = true;
  train::run_training(c);
  EXPECT_EQ(scaler_entry(dir / "last.ckpt", "scale"), 2048.0);
  fs::remove_all(dir);
}

// Non-finite gradients at every step are not an overflow that a smaller scale cures: once the
// dynamic scale is down to 1 (16 halvings from 2^16), the trainer stops as for any non-finite gradient.
TEST(Trainer, PersistentNonFiniteGradientsStopOnceTheScaleReachesOne) {
  auto dir = fresh_dir("overflow_forever");
  train::TrainConfig c = small_config(dir);
  c.model = "mlp:width=16,depth=3";
  c.loss_scale = "dynamic";
  c.after_backward = [](int64_t, const std::vector<std::pair<std::string, Tensor>>& named) {
    overflow(named.front().second);
  };
  try {
    train::run_training(c);
    FAIL() << "expected training to stop";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite gradient at step 17"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
  // With --skip-nonfinite those steps are skipped and counted, and the scale stays at 1.
  c.skip_nonfinite = true;
  const train::TrainResult r = train::run_training(c);
  EXPECT_EQ(r.steps, 32);
  EXPECT_EQ(r.skipped_steps, 16);
  EXPECT_EQ(scaler_entry(dir / "last.ckpt", "scale"), 1.0);
  EXPECT_EQ(scaler_entry(dir / "last.ckpt", "overflow_steps"), 16.0);
  fs::remove_all(dir);
}

TEST(Trainer, LossScaleAndDtypeFlagsAreChecked) {
  EXPECT_EQ(train::loss_scaler_for("auto", DType::f32), std::nullopt);
  EXPECT_EQ(train::loss_scaler_for("auto", DType::bf16), std::nullopt);
  EXPECT_TRUE(train::loss_scaler_for("auto", DType::f16)->dynamic());
  EXPECT_EQ(train::loss_scaler_for("none", DType::f16), std::nullopt);
  const auto fixed = train::loss_scaler_for("1024", DType::f32);
  EXPECT_FALSE(fixed->dynamic());
  EXPECT_EQ(fixed->scale_value(), 1024.0);
  for (const char* bad : {"", "0", "-2", "1e40", "inf", "nan", "12abc", "Dynamic"}) {
    try {
      train::loss_scaler_for(bad, DType::f16);
      ADD_FAILURE() << "accepted --loss-scale '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--loss-scale expects auto, dynamic, none or a positive number"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(train::autocast_type("f16", "cuda"), DType::f16);
  EXPECT_EQ(train::autocast_type("f16", "cuda:1"), DType::f16);
  const std::vector<std::pair<std::pair<std::string, std::string>, std::string>> refused = {
      {{"f16", "cpu"}, "--dtype f16 runs on CUDA devices only"},
      {{"f8", "cpu"}, "--dtype expects f32, bf16 or f16"},
      {{"f32", "tpu"}, "unknown device 'tpu' (expected cpu, cuda or cuda:N"},
  };
  for (const auto& [args, want] : refused) {
    try {
      train::autocast_type(args.first, args.second);
      ADD_FAILURE() << args.first << " on " << args.second << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  }
}

TEST(Trainer, ResumeAfterAKillBeforeTheFirstCheckpointStartsOver) {
  auto dir = fresh_dir("restart");
  fs::create_directories(dir);
  io::atomic_write_file((dir / "config.json").string(), "{}\n");  // what a run killed that early leaves
  train::TrainConfig c = small_config(dir);
  c.model = "mlp:width=16,depth=3";
  c.epochs = 1;
  c.resume = true;
  EXPECT_EQ(train::run_training(c).steps, 16);
  EXPECT_TRUE(fs::exists(dir / "last.ckpt"));
  fs::remove_all(dir);
}
