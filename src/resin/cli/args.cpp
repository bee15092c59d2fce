#include "resin/cli/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "resin/core/error.h"

namespace resin::cli {

Args& Args::flag(const std::string& name, const std::string& help) {
  specs_.push_back({name, help, "", "", true, false});
  return *this;
}

Args& Args::option(const std::string& name, const std::string& def, const std::string& help, const std::string& metavar) {
  specs_.push_back({name, help, metavar, def, false, false});
  return *this;
}

Args& Args::required(const std::string& name, const std::string& help, const std::string& metavar) {
  specs_.push_back({name, help, metavar, "", false, true});
  return *this;
}

const Args::Spec& Args::spec(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return s;
  RESIN_FAIL(program_, ": internal error: undeclared option --", name);
}

bool Args::parse(const std::vector<std::string>& argv) {
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << help();
      return false;
    }
    RESIN_CHECK(a.rfind("--", 0) == 0 && a.size() > 2, "unexpected argument '", a,
                "' (options start with --; see --help)");
    std::string name = a.substr(2), value;
    bool has_inline = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline = true;
    }
    const Spec* s = nullptr;
    for (const auto& sp : specs_)
      if (sp.name == name) s = &sp;
    if (!s) {
      std::string names;
      for (const auto& sp : specs_) names.append(" --").append(sp.name);
      RESIN_FAIL("unknown option --", name, ". Valid options:", names);
    }
    RESIN_CHECK(!values_.count(name), "option --", name, " given twice");
    if (s->is_flag) {
      RESIN_CHECK(!has_inline, "--", name, " takes no value");
      values_[name] = std::string(1, '1');
      continue;
    }
    if (!has_inline) {
      RESIN_CHECK(i + 1 < argv.size(), "option --", name, " needs a value (", s->metavar, ")");
      value = argv[++i];
    }
    values_[name] = value;
  }
  for (const auto& s : specs_)
    RESIN_CHECK(!s.is_required || values_.count(s.name), "missing required option --", s.name, " ",
                s.metavar, " (", s.help, ")");
  return true;
}

bool Args::has(const std::string& name) const {
  spec(name);
  return values_.count(name) > 0;
}

bool Args::get_flag(const std::string& name) const {
  spec(name);
  return values_.count(name) > 0;
}

std::string Args::get(const std::string& name) const {
  const Spec& s = spec(name);
  auto it = values_.find(name);
  return it == values_.end() ? s.default_value : it->second;
}

int64_t Args::get_int(const std::string& name, int64_t min, int64_t max) const {
  const std::string v = get(name);
  errno = 0;
  char* end = nullptr;
  const long long r = std::strtoll(v.c_str(), &end, 10);
  RESIN_CHECK(!v.empty() && end && *end == '\0' && errno == 0, "--", name, " expects an integer, got '", v, "'");
  RESIN_CHECK(r >= min && r <= max, "--", name, " must be in [", min, ", ", max, "], got ", r);
  return r;
}

double Args::get_double(const std::string& name, double min, double max) const {
  const std::string v = get(name);
  errno = 0;
  char* end = nullptr;
  const double r = std::strtod(v.c_str(), &end);
  RESIN_CHECK(!v.empty() && end && *end == '\0' && errno == 0 && std::isfinite(r), "--", name,
              " expects a finite number, got '", v, "'");
  RESIN_CHECK(r >= min && r <= max, "--", name, " must be in [", min, ", ", max, "], got ", r);
  return r;
}

std::vector<int64_t> Args::get_int_list(const std::string& name) const {
  std::vector<int64_t> out;
  std::stringstream ss(get(name));
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    char* end = nullptr;
    errno = 0;
    const long long r = std::strtoll(item.c_str(), &end, 10);
    RESIN_CHECK(end && *end == '\0' && errno == 0, "--", name, " expects comma-separated integers, got '",
                get(name), "'");
    out.push_back(r);
  }
  return out;
}

std::string Args::help() const {
  std::ostringstream os;
  os << "usage: " << program_ << " [options]\n\n" << summary_ << "\n\noptions:\n";
  for (const auto& s : specs_) {
    std::string left = "  --" + s.name + (s.is_flag ? "" : " " + s.metavar);
    os << left << std::string(left.size() < 30 ? 30 - left.size() : 1, ' ') << s.help;
    if (s.is_required) os << " (required)";
    else if (!s.is_flag && !s.default_value.empty()) os << " [default: " << s.default_value << "]";
    os << "\n";
  }
  os << "  -h, --help                  show this help\n";
  return os.str();
}

}  // namespace resin::cli
