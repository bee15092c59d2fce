// A small, dependency-free SVG plot writer for the lab's reports. Why SVG written by hand
// (docs/lab.md): the files are text (reviewable and diffable in git), render directly on GitHub and in
// every browser, need no Python/gnuplot at run time, and the output is byte-for-byte deterministic
// for the same numbers.
//
//   Plot p{.title = "ACF(1) vs depth", .xlabel = "depth L", .ylabel = "ACF(1)", .log_x = true};
//   p.series.push_back({.name = "feedforward", .x = {1, 2, 4}, .y = {0.9, 0.7, 0.2}});
//   p.hlines.push_back({.y = 0.125, .label = "white-noise band"});
//   io::atomic_write_file("acf.svg", render_svg(p));
//
// Line/point series share numeric axes (optionally log10). Bar plots (Plot::categories non-empty)
// draw one group per category and one bar per series, y[i] for category i. Non-finite points are
// skipped (a gap in a line); points ≤ 0 are skipped on a log axis. A plot with no finite point
// renders with an "no data" notice rather than failing.
#pragma once
#include <string>
#include <vector>

namespace resin::lab {

enum class SeriesStyle { line, points, line_points };

struct Series {
  std::string name{};
  std::vector<double> x{}, y{};
  SeriesStyle style = SeriesStyle::line_points;
  std::vector<double> y_err{};  // optional ± error bars (same length as y)
};

struct HLine {
  double y = 0;
  std::string label{};
};

struct Plot {
  std::string title{}, xlabel{}, ylabel{};
  bool log_x = false, log_y = false;
  std::vector<Series> series{};
  std::vector<HLine> hlines{};            // dashed reference lines (thresholds, theory)
  std::vector<std::string> categories{};  // non-empty: a grouped bar plot
  int width = 640, height = 400;
};

// The SVG document. Throws resin::Error when a series' x and y lengths differ (or y_err's), or when
// a bar plot's series do not have one value per category.
std::string render_svg(const Plot& p);

// "Nice" tick positions covering [lo, hi] (about `target` of them) on a linear axis, and decades
// (with 2 and 5 when fewer than 3 decades) on a log axis. Exposed for tests. nice_ticks gives {lo}
// for lo == hi and {lo, hi} for a range below double resolution at its magnitude (hi − lo ≤
// 1e-12·max(|lo|, |hi|), or ≤ 1e-280); render_svg widens such a range around its values first.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);
std::vector<double> log_ticks(double lo, double hi);

}  // namespace resin::lab
