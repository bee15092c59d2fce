// Crash safety of `resin train`, driving the real binary (build/resin) on a tiny synthetic MNIST:
// - SIGKILL at seeded random moments and at injected fault points inside atomic writes
//   (RESIN_FAULT_AT, io/atomic_file.h); after every kill the last checkpoint loads, --resume
//   continues, and the finished run is bitwise-identical to one never interrupted (same threads);
// - a full disk (RLIMIT_FSIZE; the write fails with EFBIG) and an unwritable directory give a clear
//   error and leave the previous checkpoint intact.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "../data/data_test_util.h"
#include "resin/core/rng.h"
#include "resin/io/atomic_file.h"
#include "resin/io/json.h"
#include "resin/train/checkpoint.h"

namespace fs = std::filesystem;

namespace resin {
namespace {

using data::testing::TempDir;

struct Launch {
  std::vector<std::string> env;  // NAME=VALUE added to the environment
  rlim_t file_size_limit = RLIM_INFINITY;
  bool drop_root = false;  // run as nobody when we are root (root ignores directory permissions)
};

struct Outcome {
  bool killed = false;  // ended by SIGKILL (ours or an injected fault's)
  int exit_code = -1;
  double seconds = 0;
  std::string log;
};

// Writes a tiny MNIST-format dataset (192 train / 48 test images) into dir.
void write_dataset(const TempDir& dir) {
  for (const auto& [split, n] : {std::pair<std::string, uint32_t>{"train", 192}, {"t10k", 48}}) {
    std::vector<uint8_t> labels(n), images = data::testing::pattern(size_t{n} * 784, n);
    for (uint32_t i = 0; i < n; ++i) {
      labels[i] = static_cast<uint8_t>((i * 7) % 10);
      // A bright bar whose position is the class, so the network has something to learn.
      for (int x = 0; x < 28; ++x) images[size_t{i} * 784 + 28 * (2 + 2 * labels[i]) + x] = 255;
    }
    data::testing::write_bytes(dir.file(split + "-images-idx3-ubyte"),
                               data::testing::idx_bytes(0x00000803, {n, 28, 28}, images));
    data::testing::write_bytes(dir.file(split + "-labels-idx1-ubyte"),
                               data::testing::idx_bytes(0x00000801, {n}, labels));
  }
}

// 3 epochs of 12 steps, checkpoints every `checkpoint_every` steps and after each epoch.
std::vector<std::string> train_args(const std::string& data_dir, const std::string& out, bool resume,
                                    int checkpoint_every = 3) {
  std::vector<std::string> a = {"train", "--model", "mlp:width=16,depth=3", "--data", "mnist", "--data-dir", data_dir,
                                "--epochs", "3", "--batch-size", "16", "--lr", "0.05", "--threads", "1", "--workers",
                                "1", "--checkpoint-every", std::to_string(checkpoint_every), "--log-every", "2",
                                "--progress", "lines", "--seed", "5", "--out", out};
  if (resume) a.push_back("--resume");
  return a;
}

pid_t spawn(const std::vector<std::string>& args, const Launch& l, const std::string& log_path) {
  const std::string binary = std::string(RESIN_BINARY_DIR) + "/resin";
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe-ish work until exec.
  const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
  }
  ::setenv("OMP_WAIT_POLICY", "passive", 1);
  ::setenv("OMP_NUM_THREADS", "1", 1);
  for (const auto& e : l.env) ::putenv(const_cast<char*>(e.c_str()));
  if (l.file_size_limit != RLIM_INFINITY) {
    ::signal(SIGXFSZ, SIG_IGN);  // a write past the limit then fails with EFBIG, as on a full disk
    const rlimit r{l.file_size_limit, l.file_size_limit};
    ::setrlimit(RLIMIT_FSIZE, &r);
  }
  if (l.drop_root && ::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(126);
  std::vector<char*> argv{const_cast<char*>(binary.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(binary.c_str(), argv.data());
  ::_exit(127);
}

// Runs resin; kills it with SIGKILL after `kill_after` seconds if it is still running (< 0: never).
Outcome run_resin(const std::vector<std::string>& args, const Launch& l, const std::string& log_path,
                  double kill_after = -1) {
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = spawn(args, l, log_path);
  EXPECT_GT(pid, 0);
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, kill_after < 0 ? 0 : WNOHANG);
    if (r == pid) break;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (elapsed >= kill_after) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  Outcome o;
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  o.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  o.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.log = io::read_file(log_path);
  return o;
}

std::vector<std::string> temporaries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) out.push_back(e.path().filename().string());
  return out;
}

// metrics.jsonl as (kind, step) per record plus the evaluation numbers, which must match exactly
// (train records average over a window that a resume restarts, so their values may differ).
std::vector<std::string> metrics_outline(const std::string& path) {
  std::vector<std::string> out;
  const std::string text = io::read_file(path);
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    const io::JsonValue r = io::parse_json(text.substr(pos, nl - pos), path);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    std::string line = r.find("kind")->string + " " + std::to_string(r.find("step")->integer);
    if (line[0] == 'e')
      for (const char* k : {"loss", "top1", "top5"}) line += " " + std::to_string(r.find(k)->number);
    out.push_back(line);
  }
  return out;
}

void expect_same_run(const std::string& a, const std::string& b, const std::string& what) {
  for (const char* f : {"last.ckpt", "best.ckpt", "weights.safetensors"})
    EXPECT_TRUE(io::read_file(a + "/" + f) == io::read_file(b + "/" + f)) << what << ": " << f << " differs";
  EXPECT_EQ(metrics_outline(a + "/metrics.jsonl"), metrics_outline(b + "/metrics.jsonl")) << what;
  EXPECT_TRUE(temporaries(b).empty()) << what << ": temporaries left behind";
}

TEST(CrashSafety, KilledAtRandomMomentsResumesToTheSameBits) {
  TempDir data, runs;
  write_dataset(data);
  const std::string log = runs.file("log");
  const std::string reference = runs.file("reference");
  const Outcome ref = run_resin(train_args(data.str(), reference, false), {}, log);
  ASSERT_EQ(ref.exit_code, 0) << ref.log;

  Generator g(20261128);
  const char* kStages[] = {"partial", "after_tmp", "after_rename"};
  const char* kFiles[] = {"last.ckpt", "last.ckpt", "best.ckpt", "weights.safetensors"};
  int time_kills = 0, fault_kills = 0, launches = 0;
  for (int round = 0; time_kills < 20 || fault_kills < 8; ++round) {
    const std::string out = runs.file("killed" + std::to_string(round));
    for (;;) {
      ASSERT_LT(++launches, 400) << "no progress";
      const bool resume = fs::exists(out + "/config.json");
      Launch l;
      double kill_after = -1;
      const bool fault = fault_kills < 8 && g.below(3) == 0;
      if (fault) {
        l.env.push_back(str_cat("RESIN_FAULT_AT=", kStages[g.below(3)], ":", 1 + g.below(3), ":", kFiles[g.below(4)]));
      } else {
        kill_after = 0.7 * ref.seconds * g.uniform();
      }
      const Outcome o = run_resin(train_args(data.str(), out, resume), l, log, kill_after);
      if (!o.killed) {
        ASSERT_EQ(o.exit_code, 0) << "launch " << launches << (fault ? " " + l.env[0] : "") << "\n" << o.log;
        break;
      }
      (fault ? fault_kills : time_kills)++;
      // After every kill the last checkpoint (if any yet) is whole and loads.
      if (fs::exists(out + "/last.ckpt")) {
        EXPECT_NO_THROW(train::load_checkpoint(out + "/last.ckpt")) << o.log;
      }
    }
    expect_same_run(reference, out, "round " + std::to_string(round));
  }
  std::printf("[ crash    ] %d random-time kills + %d fault-point kills in %d launches\n", time_kills, fault_kills,
              launches);
}

// A run stopped after step 10 (checkpoint at step 10), for the failure tests.
std::string stopped_run(const TempDir& data, const TempDir& runs, std::string* ckpt) {
  const std::string out = runs.file("run");
  auto args = train_args(data.str(), out, false, 5);
  args.insert(args.end(), {"--max-steps", "10"});
  const Outcome o = run_resin(args, {}, runs.file("log"));
  EXPECT_EQ(o.exit_code, 0) << o.log;
  *ckpt = io::read_file(out + "/last.ckpt");
  EXPECT_EQ(train::load_checkpoint(out + "/last.ckpt").info.step, 10);
  return out;
}

TEST(CrashSafety, FullDiskKeepsThePreviousCheckpoint) {
  TempDir data, runs;
  write_dataset(data);
  std::string before;
  const std::string out = stopped_run(data, runs, &before);
  Launch l;
  l.file_size_limit = before.size() / 2;  // the metrics file fits, the next checkpoint does not
  const Outcome o = run_resin(train_args(data.str(), out, true), l, runs.file("log"));
  EXPECT_EQ(o.exit_code, 1) << o.log;
  for (const char* part : {"could not save", "last.ckpt", "File too large", "last good checkpoint is kept",
                           "(step 10)", "--resume"})
    EXPECT_NE(o.log.find(part), std::string::npos) << "'" << part << "' not in:\n" << o.log;
  EXPECT_TRUE(io::read_file(out + "/last.ckpt") == before) << "the previous checkpoint changed";
  EXPECT_TRUE(temporaries(out).empty());
  // With space again, --resume continues from it.
  const Outcome again = run_resin(train_args(data.str(), out, true), {}, runs.file("log"));
  EXPECT_EQ(again.exit_code, 0) << again.log;
  EXPECT_NE(again.log.find("epoch 0, step 10"), std::string::npos) << again.log;
}

TEST(CrashSafety, UnwritableDirectoryIsAClearError) {
  TempDir data, runs;
  write_dataset(data);
  std::string before;
  const std::string out = stopped_run(data, runs, &before);
  // Readable by nobody (used when we are root), writable by no one but root.
  fs::permissions(data.str(), fs::perms(0755));
  fs::permissions(runs.str(), fs::perms(0755));
  for (const auto& e : fs::directory_iterator(data.str())) fs::permissions(e.path(), fs::perms(0644));
  fs::permissions(out, fs::perms(0555));
  Launch l;
  l.drop_root = true;
  const Outcome o = run_resin(train_args(data.str(), out, true), l, runs.file("log"));
  fs::permissions(out, fs::perms(0755));
  if (o.exit_code == 126) GTEST_SKIP() << "cannot drop root privileges here";
  if (o.exit_code == 127) GTEST_SKIP() << "user nobody cannot execute this build's resin binary";
  EXPECT_EQ(o.exit_code, 1) << o.log;
  for (const char* part : {"Permission denied", out.c_str()})
    EXPECT_NE(o.log.find(part), std::string::npos) << "'" << part << "' not in:\n" << o.log;
  EXPECT_TRUE(io::read_file(out + "/last.ckpt") == before) << "the previous checkpoint changed";
}

// A resume deletes the temporaries of dead writers, and nothing else: not a live process's, not a
// user's file that merely contains ".tmp-".
TEST(CrashSafety, ResumeRemovesOnlyDeadWritersTemporaries) {
  TempDir data, runs;
  write_dataset(data);
  std::string before;
  const std::string out = stopped_run(data, runs, &before);
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string dead_tmp = str_cat(".last.ckpt.tmp-", dead, "-0-12345");
  const std::string live_tmp = str_cat(".last.ckpt.tmp-", ::getpid(), "-3-777");
  const std::vector<std::string> kept = {live_tmp, ".notes.tmp-old", ".a.tmp-1-2", ".b.tmp-x-1-2", "c.tmp-99999-1-2"};
  for (const std::string& f : kept) io::atomic_write_file(out + "/" + f, "user data");
  io::atomic_write_file(out + "/" + dead_tmp, "partial checkpoint");
  const Outcome o = run_resin(train_args(data.str(), out, true), {}, runs.file("log"));
  ASSERT_EQ(o.exit_code, 0) << o.log;
  EXPECT_FALSE(fs::exists(out + "/" + dead_tmp)) << "a dead writer's temporary was left behind";
  for (const std::string& f : kept) EXPECT_TRUE(fs::exists(out + "/" + f)) << f << " was deleted";
}

TEST(CrashSafety, DamagedCheckpointIsAClearErrorOnResume) {
  TempDir data, runs;
  write_dataset(data);
  std::string before;
  const std::string out = stopped_run(data, runs, &before);
  io::atomic_write_file(out + "/last.ckpt", before.substr(0, before.size() / 3));  // damaged from outside
  const Outcome o = run_resin(train_args(data.str(), out, true), {}, runs.file("log"));
  EXPECT_EQ(o.exit_code, 1) << o.log;
  for (const char* part : {"--resume: cannot load the checkpoint", "last.ckpt", "truncated", "The file is damaged"})
    EXPECT_NE(o.log.find(part), std::string::npos) << "'" << part << "' not in:\n" << o.log;
}

}  // namespace
}  // namespace resin
