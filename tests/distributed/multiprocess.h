// Runs several processes for the distributed tests: ranks of this test binary (a worker test
// named DistWorker.DISABLED_<name>, run only when spawned) or of the resin CLI, each with its own
// environment and with stdout+stderr captured in a file.
#pragma once
#include <string>
#include <sys/types.h>
#include <utility>
#include <vector>

namespace resin::testing {

using Env = std::vector<std::pair<std::string, std::string>>;

struct Proc {
  pid_t pid = -1;
  std::string log;  // path of the captured output
};

// Starts argv[0] (a path) with `env` added to this process's environment.
Proc spawn(const std::vector<std::string>& argv, const Env& env, const std::string& log);

struct Exit {
  int code = -1;        // exit status; 128 + signal when killed; -1 when it did not end in time
  double seconds = 0;   // from wait_exit's call to the exit
  std::string output;
};
// Waits up to timeout_s for p to end (SIGKILL after that).
Exit wait_exit(const Proc& p, double timeout_s);

// A free TCP port on 127.0.0.1 for MASTER_PORT.
int free_port();
// A fresh directory under the temp dir, removed first if it exists.
std::string fresh_dir(const std::string& name);
// The environment of rank `rank` of `world` rendezvousing at 127.0.0.1:port.
Env rank_env(int rank, int world, int port);

// Runs worker test DistWorker.DISABLED_<name> as `world` ranks; returns each rank's exit.
std::vector<Exit> run_workers(const std::string& name, int world, double timeout_s, const Env& extra = {});
// Formats exits for an assertion message.
std::string describe(const std::vector<Exit>& exits);

// True inside a spawned worker (RESIN_TEST_WORKER is set).
bool is_worker();

}  // namespace resin::testing
