#include "multiprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "resin/distributed/tcp_store.h"

namespace resin::testing {

namespace fs = std::filesystem;

Proc spawn(const std::vector<std::string>& argv, const Env& env, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return {pid, log};
}

Exit wait_exit(const Proc& p, double timeout_s) {
  Exit e;
  const auto t0 = std::chrono::steady_clock::now();
  int status = 0;
  while (true) {
    const pid_t r = ::waitpid(p.pid, &status, WNOHANG);
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r == p.pid) {
      e.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (r < 0 || e.seconds > timeout_s) {
      ::kill(p.pid, SIGKILL);
      ::waitpid(p.pid, &status, 0);
      e.code = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::ifstream f(p.log);
  std::stringstream ss;
  ss << f.rdbuf();
  e.output = ss.str();
  return e;
}

int free_port() { return distributed::TcpStore("127.0.0.1", 0, true, std::chrono::seconds(5)).port(); }

std::string fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("resin_dist_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

Env rank_env(int rank, int world, int port) {
  return {{"RANK", std::to_string(rank)},
          {"WORLD_SIZE", std::to_string(world)},
          {"MASTER_ADDR", "127.0.0.1"},
          {"MASTER_PORT", std::to_string(port)},
          {"OMP_NUM_THREADS", "1"},
          {"OMP_WAIT_POLICY", "passive"}};
}

std::vector<Exit> run_workers(const std::string& name, int world, double timeout_s, const Env& extra) {
  const std::string dir = fresh_dir("worker_" + name);
  const int port = free_port();
  std::vector<Proc> procs;
  for (int r = 0; r < world; ++r) {
    Env env = rank_env(r, world, port);
    env.emplace_back("RESIN_TEST_WORKER", "1");
    env.emplace_back("RESIN_TEST_DIR", dir);
    env.insert(env.end(), extra.begin(), extra.end());
    procs.push_back(spawn({"/proc/self/exe", "--gtest_filter=DistWorker.DISABLED_" + name,
                           "--gtest_also_run_disabled_tests", "--gtest_brief=1"},
                          env, dir + "/rank" + std::to_string(r) + ".log"));
  }
  std::vector<Exit> out;
  for (auto& p : procs) out.push_back(wait_exit(p, timeout_s));
  fs::remove_all(dir);
  return out;
}

std::string describe(const std::vector<Exit>& exits) {
  std::string s;
  for (size_t r = 0; r < exits.size(); ++r)
    s += "--- rank " + std::to_string(r) + " exit " + std::to_string(exits[r].code) + " after " +
         std::to_string(exits[r].seconds) + " s:\n" + exits[r].output + "\n";
  return s;
}

bool is_worker() { return std::getenv("RESIN_TEST_WORKER") != nullptr; }

}  // namespace resin::testing
