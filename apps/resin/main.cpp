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
    "  launch  run a command as the processes of a data-parallel job (resin launch -n 2 -- resin train ...)\n"
    "  export  write a model as an ONNX file (for ONNX Runtime, TensorRT, OpenVINO)\n"
    "  import  read an ONNX model: check it, list it, run it, save its weights\n"
    "  lab     reproduce the survey's claims about residual connections (reports and plots)\n"
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
  const Command commands[] = {{"train", resin::app::cmd_train},   {"eval", resin::app::cmd_eval},
                              {"zoo", resin::app::cmd_zoo},       {"launch", resin::app::cmd_launch},
                              {"export", resin::app::cmd_export}, {"import", resin::app::cmd_import}, {"lab", resin::app::cmd_lab},
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
  // In a data-parallel job every rank reports its own errors: say which one speaks.
  std::string who = "resin " + name;
  const char* rank = std::getenv("RANK");
  const char* world = std::getenv("WORLD_SIZE");
  if (name != "launch" && rank && world && std::string(world) != "1") who += std::string(" (rank ") + rank + "/" + world + ")";
  for (const auto& c : commands) {
    if (name != c.name) continue;
    try {
      return c.run(rest);
    } catch (const resin::Error& e) {
      std::cerr << who << ": error: " << e.what() << "\n";
      return 1;
    } catch (const std::bad_alloc&) {
      std::cerr << who << ": error: out of memory\n";
      return 1;
    } catch (const std::exception& e) {
      std::cerr << who << ": internal error: " << e.what() << "\n";
      return 1;
    }
  }
  std::cerr << "resin: unknown command '" << name << "'\n\n" << kUsage;
  return 2;
}
