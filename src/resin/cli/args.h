// A small, strict command-line parser: every flag is declared with a type, a default and help;
// unknown flags, missing values and malformed numbers are errors that name the flag.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace resin::cli {

class Args {
 public:
  Args(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

  Args& flag(const std::string& name, const std::string& help);  // boolean, default false
  Args& option(const std::string& name, const std::string& default_value, const std::string& help,
               const std::string& metavar = "VALUE");
  Args& required(const std::string& name, const std::string& help, const std::string& metavar = "VALUE");

  // Parses argv (without the program/subcommand words). Returns false if --help was given
  // (help text already printed). Throws resin::Error on bad input.
  bool parse(const std::vector<std::string>& argv);

  bool has(const std::string& name) const;  // given on the command line
  bool get_flag(const std::string& name) const;
  std::string get(const std::string& name) const;
  int64_t get_int(const std::string& name, int64_t min = INT64_MIN, int64_t max = INT64_MAX) const;
  double get_double(const std::string& name, double min = -1e300, double max = 1e300) const;
  std::vector<int64_t> get_int_list(const std::string& name) const;  // "30,60,90"
  std::string help() const;

 private:
  struct Spec {
    std::string name, help, metavar, default_value;
    bool is_flag = false, is_required = false;
  };
  const Spec& spec(const std::string& name) const;
  std::string program_, summary_;
  std::vector<Spec> specs_;
  std::map<std::string, std::string> values_;
};

}  // namespace resin::cli
