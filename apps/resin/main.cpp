// resin: train, evaluate and inspect residual networks from the command line.
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "commands.h"
#include "resin/core/error.h"

namespace {

const char* kUsage =
    "usage: resin <command> [options]\n"
    "\n"
    "commands:\n"
    "  train   train a zoo model on a dataset (Fashion-MNIST by default)\n"
    "  eval    evaluate a checkpoint on a dataset's test split\n"
    "  zoo     list every model with its parameters and multiply-accumulates\n"
    "  bench   time training steps or inference of a model (median, spread, GFLOP/s)\n"
    "\n"
    "`resin <command> --help` describes each command's options.\n";

struct Command {
  const char* name;
  int (*run)(const std::vector<std::string>&);
};

}  // namespace

int main(int argc, char** argv) {
  // libgomp reads OMP_WAIT_POLICY once, at load time. Its default (spin before sleeping) collapses
  // throughput 20-40x whenever another thread — our data loader, or another process — wants one of
  // these machines' 2 cores; sleeping waits cost nothing measurable per oneDNN call. So re-exec once
  // with the passive policy unless the user chose one.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
  }
  const Command commands[] = {{"train", resin::app::cmd_train}, {"eval", resin::app::cmd_eval}, {"zoo", resin::app::cmd_zoo},
                              {"bench", resin::app::cmd_bench}};
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string name = argv[1];
  if (name == "-h" || name == "--help" || name == "help") {
    std::cout << kUsage;
    return 0;
  }
  std::vector<std::string> rest(argv + 2, argv + argc);
  for (const auto& c : commands) {
    if (name != c.name) continue;
    try {
      return c.run(rest);
    } catch (const resin::Error& e) {
      std::cerr << "resin " << name << ": error: " << e.what() << "\n";
      return 1;
    } catch (const std::bad_alloc&) {
      std::cerr << "resin " << name << ": error: out of memory\n";
      return 1;
    } catch (const std::exception& e) {
      std::cerr << "resin " << name << ": internal error: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "resin: unknown command '" << name << "'\n\n" << kUsage;
  return 2;
}
