// Subcommands of the `resin` CLI. Each takes the arguments after its name and returns an exit code.
#pragma once
#include <string>
#include <vector>

namespace resin::app {

int cmd_train(const std::vector<std::string>& args);
int cmd_eval(const std::vector<std::string>& args);
int cmd_zoo(const std::vector<std::string>& args);
int cmd_launch(const std::vector<std::string>& args);
int cmd_export(const std::vector<std::string>& args);
int cmd_import(const std::vector<std::string>& args);
int cmd_lab(const std::vector<std::string>& args);
int cmd_bench(const std::vector<std::string>& args);

}  // namespace resin::app
