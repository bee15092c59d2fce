#include <cstdio>
#include <iostream>
#include <set>
#include <sstream>

#include "commands.h"
#include "resin/cli/args.h"
#include "resin/io/json.h"
#include "resin/models/zoo.h"
#include "resin/nn/init.h"

namespace resin::app {

namespace {

std::vector<const models::ZooEntry*> select(const std::string& family, const std::string& names) {
  std::vector<const models::ZooEntry*> out;
  if (!names.empty()) {
    std::stringstream ss(names);
    for (std::string n; std::getline(ss, n, ',');)
      if (!n.empty()) out.push_back(&models::zoo_entry(n));  // throws with suggestions when unknown
  } else {
    std::set<std::string> families;
    for (const auto& e : models::zoo()) {
      families.insert(e.family);
      if (family.empty() || e.family == family) out.push_back(&e);
    }
    if (out.empty()) {
      std::string known;
      for (const auto& f : families) known += (known.empty() ? "" : ", ") + f;
      RESIN_FAIL("resin zoo: unknown family '", family, "' (families: ", known, ")");
    }
  }
  if (!family.empty())
    std::erase_if(out, [&](const models::ZooEntry* e) { return e->family != family; });
  return out;
}

}  // namespace

int cmd_zoo(const std::vector<std::string>& argv) {
  cli::Args args("resin zoo", "Lists every model in the zoo with its parameter count and multiply-accumulates,\n"
                              "each in its paper configuration (ImageNet models: 3x224x224, 1000 classes;\n"
                              "CIFAR models: 3x32x32, 10 classes).");
  args.flag("json", "print a JSON list of {name, family, params, macs, input, classes, description}")
      .flag("markdown", "print a Markdown table (name, family, params, GMACs, input, description)")
      .option("family", "", "only models of this family (e.g. resnet-cifar, resnext, densenet, vgg)", "NAME")
      .option("name", "", "only these models (comma-separated, e.g. resnet152,vgg19)", "NAMES")
      .flag("no-macs", "skip the MAC count (faster: no forward passes; macs printed as -1)");
  if (!args.parse(argv)) return 0;
  const bool json = args.get_flag("json"), markdown = args.get_flag("markdown"), macs = !args.get_flag("no-macs");
  RESIN_CHECK(!(json && markdown), "resin zoo: choose one of --json and --markdown");
  const auto entries = select(args.get("family"), args.get("name"));
  if (json) std::cout << "[";
  else if (markdown) std::printf("| name | family | params | GMACs | input | description |\n|---|---|---:|---:|---|---|\n");
  else std::printf("%-20s %-20s %14s %9s  %s\n", "name", "family", "params", "GMACs", "input");
  bool first = true;
  for (const models::ZooEntry* e : entries) {
    // Counting needs shapes only: no random draws (they took seconds per large model; zeros instead).
    auto m = [&] {
      nn::init::SkipInitGuard shapes_only;
      return e->make(e->paper_args);
    }();
    const int64_t params = m->parameter_count();
    const int64_t n_macs = macs ? models::count_macs(*m, e->paper_args.in_channels, e->paper_args.image_size) : -1;
    m.reset();  // the biggest models hold ~0.5 GB of weights
    const std::string input = std::to_string(e->paper_args.in_channels) + "x" + std::to_string(e->paper_args.image_size) +
                              "x" + std::to_string(e->paper_args.image_size);
    if (json) {
      std::cout << (first ? "" : ",") << "\n  {\"name\": " << io::json_quote(e->name)
                << ", \"family\": " << io::json_quote(e->family) << ", \"params\": " << params
                << ", \"macs\": " << n_macs << ", \"input\": " << io::json_quote(input)
                << ", \"classes\": " << e->paper_args.num_classes
                << ", \"description\": " << io::json_quote(e->description) << "}";
    } else {
      char gmacs[32] = "-";
      if (macs) std::snprintf(gmacs, sizeof gmacs, "%.3f", static_cast<double>(n_macs) / 1e9);
      if (markdown)
        std::printf("| %s | %s | %lld | %s | %s | %s |\n", e->name.c_str(), e->family.c_str(),
                    static_cast<long long>(params), gmacs, input.c_str(), e->description.c_str());
      else
        std::printf("%-20s %-20s %14lld %9s  %s\n", e->name.c_str(), e->family.c_str(),
                    static_cast<long long>(params), gmacs, input.c_str());
    }
    std::cout.flush();
    std::fflush(stdout);
    first = false;
  }
  if (json) std::cout << "\n]\n";
  return 0;
}

}  // namespace resin::app
