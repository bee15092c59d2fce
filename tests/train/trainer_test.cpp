// End-to-end tests of the trainer on real Fashion-MNIST subsets (dataset-fashion-mnist).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "resin/io/atomic_file.h"
#include "resin/io/json.h"
#include "resin/train/checkpoint.h"
#include "resin/train/trainer.h"

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
