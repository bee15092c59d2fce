// `resin launch`: starts the local processes of a data-parallel job with the torchrun-style
// environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; distributed/process_group.h)
// and supervises them: when one fails, the others get a grace period to stop on their own (they
// notice a dead peer at once, or after --dist-timeout), then SIGTERM, then SIGKILL.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "commands.h"
#include "resin/cli/args.h"
#include "resin/core/error.h"
#include "resin/distributed/tcp_store.h"

namespace resin::app {

namespace {

// Children, for the signal handler to forward SIGINT/SIGTERM (kill() is async-signal-safe).
pid_t g_children[1024];
volatile sig_atomic_t g_num_children = 0;

void forward_signal(int sig) {
  for (sig_atomic_t i = 0; i < g_num_children; ++i)
    if (g_children[i] > 0) ::kill(g_children[i], sig);
}

// A port nobody listens on now: bind to port 0 and read what the kernel chose.
int free_port() {
  distributed::TcpStore probe("127.0.0.1", 0, true, std::chrono::seconds(5));
  return probe.port();
}

std::string self_exe() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  RESIN_CHECK(n > 0, "launch: cannot find the resin executable (/proc/self/exe)");
  return std::string(buf, static_cast<size_t>(n));
}

pid_t spawn(const std::vector<std::string>& cmd, const std::vector<std::pair<std::string, std::string>>& env) {
  std::vector<char*> argv;
  for (const auto& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  RESIN_CHECK(pid >= 0, "launch: fork failed");
  if (pid == 0) {
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "resin launch: cannot run '%s'\n", argv[0]);
    ::_exit(127);
  }
  return pid;
}

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

}  // namespace

int cmd_launch(const std::vector<std::string>& argv) {
  std::vector<std::string> own, cmd;
  bool after = false;
  for (const auto& a : argv) {
    if (!after && a == "--") {
      after = true;
      continue;
    }
    (after ? cmd : own).push_back(!after && a == "-n" ? "--nproc" : a);
  }
  cli::Args args("resin launch",
                 "Runs COMMAND as the local processes of a data-parallel job:\n"
                 "  resin launch -n 2 -- resin train --model resnet20 ...\n"
                 "Each process gets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (and OMP_NUM_THREADS\n"
                 "= cores / processes unless set). On several machines run it once per machine with the same\n"
                 "--nnodes, --master-addr and --master-port and that machine's --node-rank. Under mpirun or srun\n"
                 "no launcher is needed. Exits with the first failing process's code.");
  args.option("nproc", "1", "processes on this machine (also -n)", "N")
      .option("nnodes", "1", "machines in the job", "M")
      .option("node-rank", "0", "this machine's index in [0, M)", "K")
      .option("master-addr", "127.0.0.1", "host of rank 0 (serves the rendezvous)", "HOST")
      .option("master-port", "0", "rendezvous port (0: a free port; needs --nnodes 1)", "PORT")
      .option("grace", "5", "seconds the others may take to stop after one failed, before SIGTERM", "S");
  if (!args.parse(own)) return 0;
  RESIN_CHECK(!cmd.empty(), "launch: no command; usage: resin launch -n N -- COMMAND [ARGS...]");
  const int nproc = static_cast<int>(args.get_int("nproc", 1, 1024));
  const int nnodes = static_cast<int>(args.get_int("nnodes", 1, 1 << 16));
  const int node_rank = static_cast<int>(args.get_int("node-rank", 0, nnodes - 1));
  int port = static_cast<int>(args.get_int("master-port", 0, 65535));
  const double grace = args.get_double("grace", 0, 3600);
  RESIN_CHECK(port != 0 || nnodes == 1, "launch: --nnodes ", nnodes, " needs an explicit --master-port shared by all machines");
  if (port == 0) port = free_port();
  if (cmd[0] == "resin") cmd[0] = self_exe();  // the same build, whatever PATH says

  std::vector<std::pair<std::string, std::string>> common = {
      {"WORLD_SIZE", std::to_string(nproc * nnodes)},   {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
      {"MASTER_ADDR", args.get("master-addr")},         {"MASTER_PORT", std::to_string(port)}};
  if (!std::getenv("OMP_NUM_THREADS")) {
    // Like torchrun: N processes each using every core would oversubscribe the machine.
    const long cores = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
    common.emplace_back("OMP_NUM_THREADS", std::to_string(std::max(1L, cores / nproc)));
  }

  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  std::vector<pid_t> pids;
  for (int i = 0; i < nproc; ++i) {
    auto env = common;
    env.emplace_back("RANK", std::to_string(node_rank * nproc + i));
    env.emplace_back("LOCAL_RANK", std::to_string(i));
    pids.push_back(spawn(cmd, env));
    g_children[i] = pids.back();
    g_num_children = i + 1;
  }

  // Supervise: reap children; after the first failure, stop the rest.
  int result = 0, alive = nproc;
  std::chrono::steady_clock::time_point failed_at;
  bool terminated = false, killed = false;
  while (alive > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, result != 0 ? WNOHANG : 0);
    if (pid > 0) {
      int idx = 0;
      while (idx < nproc && pids[static_cast<size_t>(idx)] != pid) ++idx;
      if (idx == nproc) continue;
      --alive;
      g_children[idx] = 0;
      const int code = exit_code(status);
      if (code != 0 && result == 0) {
        result = code;
        failed_at = std::chrono::steady_clock::now();
        if (alive > 0)
          std::fprintf(stderr, "resin launch: rank %d exited with code %d; stopping the other %d process(es)\n",
                       node_rank * nproc + idx, code, alive);
      }
      continue;
    }
    if (pid < 0 && errno != EINTR) break;
    if (result == 0) continue;
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - failed_at).count();
    if (!terminated && waited > grace) {
      forward_signal(SIGTERM);
      terminated = true;
    } else if (!killed && waited > grace + 5) {
      forward_signal(SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return result;
}

}  // namespace resin::app
