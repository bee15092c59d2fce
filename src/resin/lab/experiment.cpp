#include "resin/lab/experiment.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "resin/core/error.h"
#include "resin/lab/report.h"

namespace resin::lab {

std::vector<Experiment> builtin_experiments();  // registry.cpp
std::vector<Experiment> trained_experiments();  // registry.cpp (appended after the builtin ones)

const char* tag_name(Tag t) {
  switch (t) {
    case Tag::paper:
      return "[paper]";
    case Tag::code:
      return "[code]";
    case Tag::second_hand:
      return "[2nd]";
    case Tag::memory:
      return "[mem]";
    case Tag::computed:
      return "[computed]";
  }
  return "[?]";
}

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::reproduced:
      return "reproduced";
    case Verdict::not_reproduced:
      return "not reproduced";
    case Verdict::not_resolved:
      return "not resolved";
    case Verdict::reported:
      return "report only";
  }
  return "?";
}

std::string fmt(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char b[40];
  if (v == std::floor(v) && std::abs(v) < 1e15)
    std::snprintf(b, sizeof b, "%.0f", v);
  else
    std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

std::string fmt_int(int64_t v) { return std::to_string(v); }

Table& Table::add(std::vector<std::string> row) {
  RESIN_CHECK(row.size() == columns.size(), "lab table '", name, "': row has ", row.size(), " cells for ",
              columns.size(), " columns");
  rows.push_back(std::move(row));
  return *this;
}

void Results::metric(const std::string& name, double value) {
  for (auto& [n, v] : metrics_)
    if (n == name) {
      v = value;
      return;
    }
  metrics_.emplace_back(name, value);
}

const Judgement* Results::find(const std::string& id) const {
  for (const Judgement& j : judgements_)
    if (j.id == id) return &j;
  return nullptr;
}

void Results::judge(const std::string& id, Verdict v, const std::string& measured) {
  if (!criteria_ids.empty()) {
    bool known = false;
    for (const auto& c : criteria_ids) known |= c == id;
    RESIN_CHECK(known, "lab: verdict for unknown criterion '", id, "'");
  }
  RESIN_CHECK(find(id) == nullptr, "lab: criterion '", id, "' judged twice");
  judgements_.push_back({id, v, measured});
}

void Results::sort_judgements() {
  auto rank = [&](const Judgement& j) {
    return std::find(criteria_ids.begin(), criteria_ids.end(), j.id) - criteria_ids.begin();
  };
  std::stable_sort(judgements_.begin(), judgements_.end(),
                   [&](const Judgement& a, const Judgement& b) { return rank(a) < rank(b); });
}

Table& Results::table(const std::string& name, const std::string& caption, std::vector<std::string> columns) {
  for (const Table& t : tables_) RESIN_CHECK(t.name != name, "lab: table '", name, "' added twice");
  tables_.push_back({name, caption, std::move(columns), {}});
  return tables_.back();
}

void Results::plot(const std::string& name, const std::string& caption, Plot p) {
  for (const NamedPlot& q : plots_) RESIN_CHECK(q.name != name, "lab: plot '", name, "' added twice");
  plots_.push_back({name, caption, std::move(p)});
}

namespace {

void validate(const Experiment& e, const std::vector<Experiment>& existing) {
  RESIN_CHECK(!e.name.empty() && e.run, "lab: an experiment needs a name and a run function");
  for (const Experiment& o : existing)
    RESIN_CHECK(o.name != e.name, "lab: experiment '", e.name, "' registered twice");
  for (size_t i = 0; i < e.criteria.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      RESIN_CHECK(e.criteria[i].id != e.criteria[j].id, "lab: experiment '", e.name, "' repeats criterion ",
                  e.criteria[i].id);
}

std::vector<Experiment>& registry() {
  // The built-in experiments pass the same validation as registered ones (unique names and criteria).
  static std::vector<Experiment> r = [] {
    std::vector<Experiment> all;
    for (std::vector<Experiment> part : {builtin_experiments(), trained_experiments()})
      for (Experiment& e : part) {
        validate(e, all);
        all.push_back(std::move(e));
      }
    return all;
  }();
  return r;
}

}  // namespace

void register_experiment(Experiment e) {
  validate(e, registry());
  registry().push_back(std::move(e));
}

const std::vector<Experiment>& experiments() { return registry(); }

const Experiment& find_experiment(const std::string& name) {
  for (const Experiment& e : experiments())
    if (e.name == name) return e;
  std::string all;
  for (const Experiment& e : experiments()) all += (all.empty() ? "" : ", ") + e.name;
  RESIN_FAIL("unknown experiment '", name, "'. Experiments: ", all,
             " (or `all`; `resin lab list` describes them)");
}

RunSummary run_experiment(const Experiment& e, Context ctx) {
  RESIN_CHECK(!ctx.out_dir.empty(), "lab: no output directory for ", e.name);
  std::filesystem::create_directories(ctx.out_dir);
  if (ctx.seeds <= 0) ctx.seeds = ctx.quick ? e.quick_seeds : e.default_seeds;
  const int saved_threads = omp_get_max_threads();
  if (ctx.threads > 0) omp_set_num_threads(static_cast<int>(ctx.threads));
  Results r;
  for (const Criterion& c : e.criteria) r.criteria_ids.push_back(c.id);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    e.run(ctx, r);
  } catch (...) {
    omp_set_num_threads(saved_threads);
    throw;
  }
  omp_set_num_threads(saved_threads);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const Criterion& c : e.criteria)
    if (!r.find(c.id))
      r.judge(c.id, c.report_only ? Verdict::reported : Verdict::not_resolved, "not measured in this run");
  r.sort_judgements();
  write_report(e, ctx, r, {utc_now(), machine_description(), seconds});
  return {e.name, ctx.out_dir, r.judgements(), r.metrics(), seconds};
}

double RunSummary::metric(const std::string& n) const {
  for (const auto& [k, v] : metrics)
    if (k == n) return v;
  RESIN_FAIL("lab: experiment ", name, " has no metric '", n, "'");
}

}  // namespace resin::lab
