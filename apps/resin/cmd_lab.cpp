// `resin lab`: run the lab's experiments (src/resin/lab, docs/lab.md).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "resin/cli/args.h"
#include "resin/core/cuda.h"
#include "resin/core/error.h"
#include "resin/io/atomic_file.h"
#include "resin/lab/experiment.h"

namespace resin::app {

namespace {

const char* kLabSummary =
    "Reproduces the survey's claims about residual connections at small scale. Each experiment writes\n"
    "report.md (claim, paper numbers, criteria, protocol, seeds, verdicts), metrics.json, CSV tables and\n"
    "SVG plots into --out (docs/lab.md).\n"
    "\n"
    "  resin lab list        the experiments and their criteria\n"
    "  resin lab <name>      run one experiment\n"
    "  resin lab all         run every experiment (with --deterministic: those that do not train)";

void print_list() {
  std::printf("%-20s %-13s %s\n", "name", "kind", "title");
  for (const lab::Experiment& e : lab::experiments()) {
    std::printf("%-20s %-13s %s\n", e.name.c_str(), e.trains ? "trained" : "deterministic", e.title.c_str());
    std::string ids;
    for (const lab::Criterion& c : e.criteria)
      ids += (ids.empty() ? "" : " ") + c.id + (c.report_only ? "*" : "");
    std::printf("%-20s %-13s criteria: %s\n", "", "", ids.c_str());
  }
  std::printf("\n* report-only. `resin lab <name> --help` for options; docs/lab.md for the protocols.\n");
}

std::string rerun_command(const std::string& name, const cli::Args& args, const std::string& out) {
  std::string c = "resin lab " + name;
  if (args.get_flag("quick")) c += " --quick";
  if (args.has("seeds")) c += " --seeds " + args.get("seeds");
  if (args.has("threads")) c += " --threads " + args.get("threads");
  if (args.has("data-dir")) c += " --data-dir " + args.get("data-dir");
  if (args.has("device")) c += " --device " + args.get("device");
  return c + " --out " + out;
}

std::string summary_markdown(const std::vector<lab::RunSummary>& runs, bool quick) {
  std::string o = str_cat("# resin lab all", quick ? " --quick" : "",
                          "\n\n| experiment | verdicts | seconds |\n|---|---|---:|\n");
  for (const auto& r : runs) {
    std::string v;
    for (const auto& j : r.judgements)
      v += (v.empty() ? "" : "; ") + j.id + ": " + lab::verdict_name(j.verdict);
    o += str_cat("| [", r.name, "](", r.name, "/report.md) | ", v, " | ",
                 lab::fmt(std::round(r.seconds * 10) / 10), " |\n");
  }
  return o;
}

void print_verdicts(const lab::RunSummary& s) {
  std::printf("%s: ", s.name.c_str());
  for (size_t i = 0; i < s.judgements.size(); ++i)
    std::printf("%s%s %s", i ? ", " : "", s.judgements[i].id.c_str(),
                lab::verdict_name(s.judgements[i].verdict));
  std::printf("  (%.1f s) -> %s/report.md\n", s.seconds, s.out_dir.c_str());
  std::fflush(stdout);
}

}  // namespace

int cmd_lab(const std::vector<std::string>& argv) {
  cli::Args args("resin lab <name|all|list>", kLabSummary);
  args.flag("quick", "CI-sized protocol (fewer seeds, smaller grids); `all --quick` takes minutes")
      .option("seeds", "0", "number of seeds (0: the experiment's default for the mode)", "N")
      .option("out", "", "output directory (default runs/lab/<name>; for `all`, runs/lab)", "DIR")
      .option("threads", "0", "compute threads (0: all cores)", "T")
      .option("data-dir", "", "Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)", "DIR")
      .option("device", "cpu",
              "where the trained experiments train: cpu | cuda | cuda:N (the others run on the CPU)", "DEV")
      .flag("deterministic", "with `all`: only the experiments that do not train");
  if (argv.empty() || argv[0].rfind("--", 0) == 0 || argv[0] == "-h") {
    if (!args.parse(argv)) return 0;  // --help
    RESIN_FAIL("resin lab: name an experiment, `all` or `list` (see `resin lab --help`)");
  }
  const std::string name = argv[0];
  if (!args.parse({argv.begin() + 1, argv.end()})) return 0;
  if (name == "list") {
    print_list();
    return 0;
  }
  lab::Context base;
  base.quick = args.get_flag("quick");
  base.seeds = args.get_int("seeds", 0, 1000);
  base.threads = args.get_int("threads", 0, 1024);
  base.fashion_mnist = args.get("data-dir");
  base.device =
      cuda::usable_device(args.get("device"));  // no CUDA build, no GPU, no such index: before any run
  if (name != "all") {
    RESIN_CHECK(!args.get_flag("deterministic"), "resin lab: --deterministic goes with `all`");
    const lab::Experiment& e = lab::find_experiment(name);  // throws listing the names
    lab::Context ctx = base;
    ctx.out_dir = args.has("out") ? args.get("out") : "runs/lab/" + name;
    ctx.command = rerun_command(name, args, ctx.out_dir);
    print_verdicts(lab::run_experiment(e, ctx));
    return 0;
  }
  const std::string root = args.has("out") ? args.get("out") : "runs/lab";
  std::vector<lab::RunSummary> runs;
  for (const lab::Experiment& e : lab::experiments()) {
    if (args.get_flag("deterministic") && e.trains) continue;
    lab::Context ctx = base;
    ctx.out_dir = (std::filesystem::path(root) / e.name).string();
    ctx.command = rerun_command(e.name, args, ctx.out_dir);
    runs.push_back(lab::run_experiment(e, ctx));
    print_verdicts(runs.back());
  }
  io::atomic_write_file((std::filesystem::path(root) / "summary.md").string(),
                        summary_markdown(runs, base.quick));
  std::printf("summary -> %s/summary.md\n", root.c_str());
  return 0;
}

}  // namespace resin::app
