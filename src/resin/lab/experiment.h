// The lab's experiment framework (`resin lab`, docs/lab.md). One experiment reproduces one claim of
// the survey at small scale: it declares the claim, the paper's numbers (each with its read-status
// tag from /work/shared/LAB.md §0), and its criteria — fixed text and threshold, written down before
// any seeded run — and a run(ctx, results) function that measures and gives every criterion a verdict.
//
//   Experiment e{.name = "e3-paths", .title = "...", .claim = "...",
//                .paper = {{"Σ_{k=5..17} C(54,k)/2^54 = 0.45% of paths", Tag::second_hand}},
//                .criteria = {{"P5", "histogram equals C(n,k)/2^n; mass on [5,17] = 0.4537% ± 1e-4"}},
//                .run = [](const Context& ctx, Results& r) {
//                  const double m = ...;
//                  r.metric("mass_5_17", m);
//                  r.check("P5", std::abs(m - 0.004537) < 1e-6, str_cat("mass = ", m));
//                }};
//   register_experiment(e);   // or add it to builtin_experiments() (registry.cpp)
//
// run_experiment() times the run, and writes the report (report.h) into ctx.out_dir. A criterion
// that run() never judged is reported as not_resolved ("not measured"), so a report never claims
// more than was measured.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "resin/core/device.h"
#include "resin/lab/svg.h"

namespace resin::lab {

// LAB.md §0 read-status tags.
enum class Tag { paper, code, second_hand, memory, computed };
const char* tag_name(Tag t);  // "[paper]", "[code]", "[2nd]", "[mem]", "[computed]"

struct PaperNumber {
  std::string text{};
  Tag tag = Tag::paper;
};

struct Criterion {
  std::string id{};          // "P1"
  std::string text{};        // the criterion with its threshold, fixed before the seeded runs
  bool report_only = false;  // measured and shown, never judged (LAB.md "report-only")
};

enum class Verdict {
  reproduced,      // the criterion held
  not_reproduced,  // it was measured and did not hold
  not_resolved,    // not decidable at this scale / not measured in this run
  reported,        // a report-only item: measured, no verdict
};
const char* verdict_name(Verdict v);  // "reproduced", "not reproduced", "not resolved", "report only"

struct Context {
  std::string out_dir{};        // the experiment's own directory (created by run_experiment)
  bool quick = false;           // CI-sized protocol (fewer seeds, smaller grids)
  int64_t seeds = 0;            // number of seeds; 0 = the experiment's default for the mode
  int64_t threads = 0;          // OpenMP threads (0: leave as is)
  std::string fashion_mnist{};  // directory of the Fashion-MNIST IDX files ("" = the Debian default)
  std::string command{};        // the command line that re-runs this experiment (for the report)
  // Where the trained experiments train and analyse their models (data stay in host memory; batches
  // are moved per step). The deterministic experiments compute on the CPU whatever this says.
  Device device = Device::cpu();
  // Seed i of the run: 1000·(i + 1), the same in every mode, so a quick run's seeds are a prefix of a
  // full run's.
  uint64_t seed(int64_t i) const { return 1000u * static_cast<uint64_t>(i + 1); }
};

// A table of numbers (and labels): written as CSV and rendered in the report.
struct Table {
  std::string name{};  // file stem: <name>.csv
  std::string caption{};
  std::vector<std::string> columns{};
  std::vector<std::vector<std::string>> rows{};
  Table& add(std::vector<std::string> row);  // throws when the width differs from columns
};
// Numbers formatted for tables and reports: %.6g, integers without exponent, "nan"/"inf" spelled out.
std::string fmt(double v);
std::string fmt_int(int64_t v);

struct Judgement {
  std::string id{};
  Verdict verdict = Verdict::not_resolved;
  std::string measured{};  // the numbers the verdict rests on
};

class Results {
 public:
  // Named scalar metrics (metrics.json; the report's "measured" table), in insertion order.
  void metric(const std::string& name, double value);
  // A verdict for criterion `id` (must be one of the experiment's; judged once).
  void judge(const std::string& id, Verdict v, const std::string& measured);
  void check(const std::string& id, bool held, const std::string& measured) {
    judge(id, held ? Verdict::reproduced : Verdict::not_reproduced, measured);
  }
  void report(const std::string& id, const std::string& measured) { judge(id, Verdict::reported, measured); }
  Table& table(const std::string& name, const std::string& caption, std::vector<std::string> columns);
  void plot(const std::string& name, const std::string& caption, Plot p);  // written as <name>.svg
  // Protocol actually run (appended, one paragraph each) and free notes (deviations, caveats).
  void protocol(const std::string& text) { protocol_.push_back(text); }
  void note(const std::string& text) { notes_.push_back(text); }
  void seeds(std::vector<uint64_t> s) { seeds_ = std::move(s); }

  const std::vector<std::pair<std::string, double>>& metrics() const { return metrics_; }
  const std::vector<Judgement>& judgements() const { return judgements_; }
  const std::vector<Table>& tables() const { return tables_; }
  struct NamedPlot {
    std::string name, caption;
    Plot plot;
  };
  const std::vector<NamedPlot>& plots() const { return plots_; }
  const std::vector<std::string>& protocol_text() const { return protocol_; }
  const std::vector<std::string>& notes() const { return notes_; }
  const std::vector<uint64_t>& seed_list() const { return seeds_; }
  // The judgement for `id`, or nullptr.
  const Judgement* find(const std::string& id) const;
  // Puts the judgements in the order of criteria_ids (the experiment's criteria order).
  void sort_judgements();

  std::vector<std::string> criteria_ids{};  // set by run_experiment, to validate judge()

 private:
  std::vector<std::pair<std::string, double>> metrics_;
  std::vector<Judgement> judgements_;
  std::vector<Table> tables_;
  std::vector<NamedPlot> plots_;
  std::vector<std::string> protocol_, notes_;
  std::vector<uint64_t> seeds_;
};

struct Experiment {
  std::string name{};    // CLI name, e.g. "e4-shattered"
  std::string title{};   // one line
  std::string claim{};   // the survey's claim, in one or two sentences
  std::string source{};  // the paper(s): "He et al. 2016, arXiv 1603.05027"
  std::vector<PaperNumber> paper{};
  std::vector<Criterion> criteria{};
  std::string criteria_note{};  // why the criteria are what they are (calibration, pilot), if changed
  int64_t default_seeds = 1, quick_seeds = 1;
  bool trains = false;  // false: deterministic (no training), runs in CI
  std::function<void(const Context&, Results&)> run{};
};

// ---- registry
// Adds an experiment (name must be new and non-empty, run must be set).
void register_experiment(Experiment e);
// Every experiment: builtin_experiments() (registry.cpp) first, then those registered later.
const std::vector<Experiment>& experiments();
// Throws resin::Error naming every experiment when `name` is unknown.
const Experiment& find_experiment(const std::string& name);

struct RunSummary {
  std::string name{}, out_dir{};
  std::vector<Judgement> judgements{};
  std::vector<std::pair<std::string, double>> metrics{};
  double seconds = 0;
  // The value of metric `name`; throws when absent.
  double metric(const std::string& name) const;
};
// Creates ctx.out_dir, runs `e` (seeds resolved: ctx.seeds or the mode's default), fills every
// unjudged criterion with not_resolved, writes report.md, metrics.json, the CSVs and the SVGs.
RunSummary run_experiment(const Experiment& e, Context ctx);

}  // namespace resin::lab
