// The lab's report writer. For one run of one experiment it writes, each file atomically
// (io/atomic_file.h), into the run's directory:
//
//   report.md      claim, the paper's numbers with read-status tags, criteria (fixed text) and why,
//                  the protocol actually run, seeds, the command that re-runs it, the date and
//                  machine, the measured numbers, the verdict table, tables, plots and notes
//   metrics.json   {"experiment", "date", "machine", "command", "quick", "seeds", "seconds",
//                   "metrics": {name: value}, "verdicts": [{"id", "criterion", "verdict", "measured"}],
//                   "tables": [csv files], "plots": [svg files]}
//   <table>.csv    one per table (RFC 4180 quoting)
//   <plot>.svg     one per plot (svg.h)
//
// Non-finite metrics are written as JSON null (and "nan"/"inf" in the Markdown).
#pragma once
#include <string>

#include "resin/lab/experiment.h"

namespace resin::lab {

struct ReportInfo {
  std::string date;     // ISO date-time, UTC
  std::string machine;  // CPU model and core count
  double seconds = 0;
};

// Writes every file above into ctx.out_dir (which must exist).
void write_report(const Experiment& e, const Context& ctx, const Results& r, const ReportInfo& info);

// The Markdown text of report.md (exposed for tests).
std::string report_markdown(const Experiment& e, const Context& ctx, const Results& r,
                            const ReportInfo& info);
// CSV text of a table.
std::string table_csv(const Table& t);
// "2026-11-28T10:04:00Z" and "Intel(R) Xeon(R) ... (2 cores)" for the current machine.
std::string utc_now();
std::string machine_description();

}  // namespace resin::lab
