#include <iostream>

#include "commands.h"
#include "resin/core/error.h"

namespace resin::app {
int cmd_train(const std::vector<std::string>&) { RESIN_FAIL("train: not built yet"); }
int cmd_eval(const std::vector<std::string>&) { RESIN_FAIL("eval: not built yet"); }
}  // namespace resin::app
