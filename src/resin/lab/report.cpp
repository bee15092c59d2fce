#include "resin/lab/report.h"

#include <unistd.h>

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "resin/core/error.h"
#include "resin/io/atomic_file.h"
#include "resin/io/json.h"

namespace resin::lab {

namespace {

constexpr size_t kMaxMarkdownRows = 60;  // longer tables are linked, not inlined

std::string md_cell(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '|' ? std::string("\\|") : c == '\n' ? std::string(" ") : std::string(1, c);
  return o;
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char b[40];
  std::snprintf(b, sizeof b, "%.17g", v);
  return b;
}

std::string criterion_text(const Experiment& e, const std::string& id) {
  for (const Criterion& c : e.criteria)
    if (c.id == id) return c.text;
  return "";
}

// The device the experiment computed on: --device for the trained ones, the CPU for the others.
Device compute_device(const Experiment& e, const Context& ctx) {
  return e.trains ? ctx.device : Device::cpu();
}

std::string metrics_json(const Experiment& e, const Context& ctx, const Results& r, const ReportInfo& info) {
  std::ostringstream o;
  o << "{\n  \"experiment\": " << io::json_quote(e.name) << ",\n  \"date\": " << io::json_quote(info.date)
    << ",\n  \"machine\": " << io::json_quote(info.machine)
    << ",\n  \"device\": " << io::json_quote(compute_device(e, ctx).str())
    << ",\n  \"command\": " << io::json_quote(ctx.command)
    << ",\n  \"quick\": " << (ctx.quick ? "true" : "false") << ",\n  \"seeds\": [";
  for (size_t i = 0; i < r.seed_list().size(); ++i) o << (i ? ", " : "") << r.seed_list()[i];
  o << "],\n  \"seconds\": " << json_number(info.seconds) << ",\n  \"metrics\": {";
  for (size_t i = 0; i < r.metrics().size(); ++i)
    o << (i ? "," : "") << "\n    " << io::json_quote(r.metrics()[i].first) << ": "
      << json_number(r.metrics()[i].second);
  o << "\n  },\n  \"verdicts\": [";
  for (size_t i = 0; i < r.judgements().size(); ++i) {
    const Judgement& j = r.judgements()[i];
    o << (i ? "," : "") << "\n    {\"id\": " << io::json_quote(j.id)
      << ", \"criterion\": " << io::json_quote(criterion_text(e, j.id))
      << ", \"verdict\": " << io::json_quote(verdict_name(j.verdict))
      << ", \"measured\": " << io::json_quote(j.measured) << "}";
  }
  o << "\n  ],\n  \"tables\": [";
  for (size_t i = 0; i < r.tables().size(); ++i)
    o << (i ? ", " : "") << io::json_quote(r.tables()[i].name + ".csv");
  o << "],\n  \"plots\": [";
  for (size_t i = 0; i < r.plots().size(); ++i)
    o << (i ? ", " : "") << io::json_quote(r.plots()[i].name + ".svg");
  o << "]\n}\n";
  return o.str();
}

}  // namespace

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

std::string machine_description() {
  std::string model = "unknown CPU";
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  return str_cat(model, " (", sysconf(_SC_NPROCESSORS_ONLN), " cores)");
}

std::string table_csv(const Table& t) {
  auto cell = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string o = "\"";
    for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
    return o + "\"";
  };
  std::string o;
  for (size_t i = 0; i < t.columns.size(); ++i) o += (i ? "," : "") + cell(t.columns[i]);
  o += "\n";
  for (const auto& row : t.rows) {
    for (size_t i = 0; i < row.size(); ++i) o += (i ? "," : "") + cell(row[i]);
    o += "\n";
  }
  return o;
}

std::string report_markdown(const Experiment& e, const Context& ctx, const Results& r,
                            const ReportInfo& info) {
  std::ostringstream o;
  int counts[4] = {0, 0, 0, 0};
  for (const Judgement& j : r.judgements()) ++counts[static_cast<int>(j.verdict)];
  o << "# " << e.name << ": " << e.title << "\n\n";
  o << "**Verdicts:** " << counts[0] << " reproduced, " << counts[1] << " not reproduced, " << counts[2]
    << " not resolved" << (counts[3] ? str_cat(", ", counts[3], " report-only") : "") << " · "
    << (ctx.quick ? "quick protocol" : "full protocol") << " · " << (e.trains ? "trained" : "no training")
    << "\n\n";
  o << "## Claim\n\n" << e.claim << "\n\n";
  if (!e.source.empty()) o << "Source: " << e.source << "\n\n";
  o << "## The paper's numbers\n\nRead-status tags as in LAB.md §0: `[paper]` read in the paper, `[code]` "
       "the "
       "authors' code, `[2nd]` third-party notes, `[mem]` unverified recollection, `[computed]` derived "
       "here.\n\n";
  for (const PaperNumber& p : e.paper) o << "- " << p.text << " `" << tag_name(p.tag) << "`\n";
  o << "\n## Criteria (fixed before the seeded runs)\n\n| id | criterion |\n|---|---|\n";
  for (const Criterion& c : e.criteria)
    o << "| " << c.id << " | " << md_cell(c.text) << (c.report_only ? " *(report only)*" : "") << " |\n";
  if (!e.criteria_note.empty()) o << "\n" << e.criteria_note << "\n";
  o << "\n## Protocol run\n\n";
  for (const std::string& p : r.protocol_text()) o << p << "\n\n";
  o << "- Seeds: ";
  if (r.seed_list().empty()) o << "none (deterministic)";
  for (size_t i = 0; i < r.seed_list().size(); ++i) o << (i ? ", " : "") << r.seed_list()[i];
  o << "\n- Command: `" << ctx.command << "`\n- Date: " << info.date << "\n- Machine: " << info.machine
    << "\n- Device: " << compute_device(e, ctx)
    << "\n- Wall time: " << fmt(std::round(info.seconds * 10) / 10) << " s\n\n";
  o << "## Verdicts\n\n| id | criterion | verdict | measured |\n|---|---|---|---|\n";
  for (const Judgement& j : r.judgements())
    o << "| " << j.id << " | " << md_cell(criterion_text(e, j.id)) << " | **" << verdict_name(j.verdict)
      << "** | " << md_cell(j.measured) << " |\n";
  if (!r.metrics().empty()) {
    o << "\n## Measured numbers\n\n| metric | value |\n|---|---:|\n";
    for (const auto& [n, v] : r.metrics()) o << "| " << md_cell(n) << " | " << fmt(v) << " |\n";
  }
  if (!r.plots().empty()) {
    o << "\n## Plots\n\n";
    for (const auto& p : r.plots())
      o << "![" << p.caption << "](" << p.name << ".svg)\n\n*" << p.caption << "*\n\n";
  }
  if (!r.tables().empty()) o << "\n## Tables\n";
  for (const Table& t : r.tables()) {
    o << "\n### " << t.caption << "\n\nRaw: [" << t.name << ".csv](" << t.name << ".csv)\n\n";
    if (t.rows.size() > kMaxMarkdownRows) {
      o << "(" << t.rows.size() << " rows; see the CSV.)\n";
      continue;
    }
    o << "|";
    for (const auto& c : t.columns) o << " " << md_cell(c) << " |";
    o << "\n|";
    for (size_t i = 0; i < t.columns.size(); ++i) o << "---|";
    o << "\n";
    for (const auto& row : t.rows) {
      o << "|";
      for (const auto& c : row) o << " " << md_cell(c) << " |";
      o << "\n";
    }
  }
  if (!r.notes().empty()) {
    o << "\n## Notes\n\n";
    for (const std::string& n : r.notes()) o << "- " << n << "\n";
  }
  o << "\nRaw metrics: [metrics.json](metrics.json)\n";
  return o.str();
}

void write_report(const Experiment& e, const Context& ctx, const Results& r, const ReportInfo& info) {
  namespace fs = std::filesystem;
  RESIN_CHECK(fs::is_directory(ctx.out_dir), "lab: output directory ", ctx.out_dir, " does not exist");
  const fs::path dir(ctx.out_dir);
  for (const Table& t : r.tables()) io::atomic_write_file((dir / (t.name + ".csv")).string(), table_csv(t));
  for (const auto& p : r.plots())
    io::atomic_write_file((dir / (p.name + ".svg")).string(), render_svg(p.plot));
  io::atomic_write_file((dir / "metrics.json").string(), metrics_json(e, ctx, r, info));
  io::atomic_write_file((dir / "report.md").string(), report_markdown(e, ctx, r, info));
}

}  // namespace resin::lab
