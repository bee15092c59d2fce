#include <cstdio>
#include <iostream>

#include "commands.h"
#include "resin/cli/args.h"
#include "resin/models/zoo.h"

namespace resin::app {

int cmd_zoo(const std::vector<std::string>& argv) {
  cli::Args args("resin zoo", "Lists every model in the zoo with its parameter count and multiply-accumulates,\n"
                              "each in its paper configuration (ImageNet models: 3x224x224, 1000 classes;\n"
                              "CIFAR models: 3x32x32, 10 classes).");
  args.flag("json", "print a JSON list of {name, family, params, macs, input, classes}")
      .option("family", "", "only models of this family (e.g. resnet-cifar, resnext)", "NAME")
      .flag("no-macs", "skip the MAC count (faster: no forward passes)");
  if (!args.parse(argv)) return 0;
  const bool json = args.get_flag("json"), macs = !args.get_flag("no-macs");
  const std::string family = args.get("family");
  if (json) std::cout << "[";
  else std::printf("%-20s %-14s %14s %12s  %s\n", "name", "family", "params", "GMACs", "input");
  bool first = true;
  for (const auto& e : models::zoo()) {
    if (!family.empty() && e.family != family) continue;
    auto m = e.make(e.paper_args);
    const int64_t params = m->parameter_count();
    const int64_t n_macs = macs ? models::count_macs(*m, e.paper_args.in_channels, e.paper_args.image_size) : -1;
    const std::string input = std::to_string(e.paper_args.in_channels) + "x" + std::to_string(e.paper_args.image_size) +
                              "x" + std::to_string(e.paper_args.image_size);
    if (json) {
      std::cout << (first ? "" : ",") << "\n  {\"name\": \"" << e.name << "\", \"family\": \"" << e.family
                << "\", \"params\": " << params << ", \"macs\": " << n_macs << ", \"input\": \"" << input
                << "\", \"classes\": " << e.paper_args.num_classes << "}";
    } else {
      std::printf("%-20s %-14s %14lld %12s  %s\n", e.name.c_str(), e.family.c_str(), static_cast<long long>(params),
                  macs ? std::to_string(static_cast<double>(n_macs) / 1e9).substr(0, 6).c_str() : "-", input.c_str());
    }
    std::cout.flush();
    first = false;
  }
  if (json) std::cout << "\n]\n";
  return 0;
}

}  // namespace resin::app
