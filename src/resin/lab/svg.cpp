#include "resin/lab/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "resin/core/error.h"

namespace resin::lab {

namespace {

// Okabe–Ito: distinguishable for the common colour-vision deficiencies.
const char* const kColors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                               "#E69F00", "#56B4E9", "#000000", "#F0E442"};
constexpr int kMarginLeft = 72, kMarginTop = 36, kMarginBottom = 48, kLegendWidth = 170;

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '&':
        o += "&amp;";
        break;
      case '"':
        o += "&quot;";
        break;
      default:
        o += c;
    }
  }
  return o;
}

std::string coord(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

std::string tick_label(double v) {
  if (v == 0) return "0";
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

// Whether [lo, hi] is too narrow for linear ticks: values a few ulps apart (a tick step there is
// too small to advance k·step), or so close to 0 that the step would underflow.
bool flat_range(double lo, double hi) {
  return hi - lo <= std::max(1e-12 * std::max(std::abs(lo), std::abs(hi)), 1e-280);
}

struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  double p0 = 0, p1 = 1;  // pixel positions of lo and hi
  std::vector<double> ticks;
  double t(double v) const { return log ? std::log10(v) : v; }
  double map(double v) const { return p0 + (t(v) - t(lo)) / (t(hi) - t(lo)) * (p1 - p0); }
  bool usable(double v) const { return std::isfinite(v) && (!log || v > 0); }
};

// Fits the axis to the values, extends it to whole ticks.
Axis make_axis(std::vector<double> vals, bool log) {
  Axis a;
  a.log = log;
  std::erase_if(vals, [&](double v) { return !a.usable(v); });
  if (vals.empty()) vals = log ? std::vector<double>{1, 10} : std::vector<double>{0, 1};
  a.lo = *std::min_element(vals.begin(), vals.end());
  a.hi = *std::max_element(vals.begin(), vals.end());
  if (flat_range(a.lo, a.hi)) {
    if (log)
      a.lo /= 10, a.hi *= 10;
    else
      a.lo -= a.lo == 0 ? 1 : std::abs(a.lo) * 0.5, a.hi += a.hi == 0 ? 1 : std::abs(a.hi) * 0.5;
  }
  a.ticks = log ? log_ticks(a.lo, a.hi) : nice_ticks(a.lo, a.hi);
  if (log) {
    a.lo = std::pow(10.0, std::floor(std::log10(a.lo)));
    a.hi = std::pow(10.0, std::ceil(std::log10(a.hi)));
  } else {
    a.lo = std::min(a.lo, a.ticks.front());
    a.hi = std::max(a.hi, a.ticks.back());
  }
  return a;
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  RESIN_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi && target >= 2, "nice_ticks: bad range [",
              lo, ", ", hi, "]");
  if (lo == hi) return {lo};
  if (flat_range(lo, hi)) return {lo, hi};
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  const double first = std::floor(lo / step), last = std::ceil(hi / step);
  // Count the ticks as an integer (++k on a double stops moving beyond 2^53). step ≥ (hi − lo)/target
  // and, the range not being flat, |lo/step| < 1e13, so there are at most target + 2 ticks.
  const double count = last - first + 1;
  RESIN_CHECK(count >= 1 && count <= target + 3.0, "nice_ticks: ", count, " ticks for [", lo, ", ", hi, "]");
  std::vector<double> t;
  for (int64_t i = 0; i < static_cast<int64_t>(count); ++i) {
    const double v = (first + static_cast<double>(i)) * step;
    t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  }
  return t;
}

std::vector<double> log_ticks(double lo, double hi) {
  RESIN_CHECK(lo > 0 && hi >= lo && std::isfinite(hi), "log_ticks: bad range [", lo, ", ", hi, "]");
  const int d0 = static_cast<int>(std::floor(std::log10(lo))),
            d1 = static_cast<int>(std::ceil(std::log10(hi)));
  const int every = std::max(1, (d1 - d0 + 7) / 8);  // at most ~8 labelled decades
  std::vector<double> t;
  for (int d = d0; d <= d1; ++d) {
    if ((d - d0) % every != 0 && d != d1) continue;
    t.push_back(std::pow(10.0, d));
    if (d1 - d0 < 3 && d < d1)
      for (double m : {2.0, 5.0}) t.push_back(m * std::pow(10.0, d));
  }
  std::sort(t.begin(), t.end());
  return t;
}

std::string render_svg(const Plot& p) {
  RESIN_CHECK(p.width >= 200 + kLegendWidth && p.height >= 150, "render_svg: plot too small (", p.width, "x",
              p.height, ")");
  const bool bars = !p.categories.empty();
  std::vector<double> xs, ys;
  for (const Series& s : p.series) {
    RESIN_CHECK(bars ? s.y.size() == p.categories.size() : s.x.size() == s.y.size(), "render_svg: series '",
                s.name, "' has ", s.x.size(), " x and ", s.y.size(), " y values",
                bars ? str_cat(" for ", p.categories.size(), " categories") : "");
    RESIN_CHECK(s.y_err.empty() || s.y_err.size() == s.y.size(), "render_svg: series '", s.name, "' has ",
                s.y_err.size(), " error bars for ", s.y.size(), " values");
    xs.insert(xs.end(), s.x.begin(), s.x.end());
    for (size_t i = 0; i < s.y.size(); ++i) {
      ys.push_back(s.y[i]);
      if (!s.y_err.empty()) ys.push_back(s.y[i] - s.y_err[i]), ys.push_back(s.y[i] + s.y_err[i]);
    }
  }
  for (const HLine& h : p.hlines) ys.push_back(h.y);
  if (bars && !p.log_y) ys.push_back(0.0);
  const bool have_data =
      std::any_of(ys.begin(), ys.end(), [&](double v) { return std::isfinite(v) && (!p.log_y || v > 0); });

  const int x0 = kMarginLeft, x1 = p.width - kLegendWidth, y0 = p.height - kMarginBottom, y1 = kMarginTop;
  Axis ax = make_axis(bars ? std::vector<double>{0, 1} : xs, !bars && p.log_x);
  Axis ay = make_axis(ys, p.log_y);
  ax.p0 = x0, ax.p1 = x1, ay.p0 = y0, ay.p1 = y1;

  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << p.width << "\" height=\"" << p.height
    << "\" viewBox=\"0 0 " << p.width << " " << p.height
    << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << (x0 + x1) / 2 << "\" y=\"20\" text-anchor=\"middle\" font-size=\"13\">" << esc(p.title)
    << "</text>\n";
  // Grid and tick labels.
  for (double t : ay.ticks) {
    if (t < ay.lo || t > ay.hi) continue;
    const std::string y = coord(ay.map(t));
    o << "<line x1=\"" << x0 << "\" y1=\"" << y << "\" x2=\"" << x1 << "\" y2=\"" << y
      << "\" stroke=\"#e0e0e0\"/>\n<text x=\"" << x0 - 6 << "\" y=\"" << y
      << "\" dy=\"4\" text-anchor=\"end\">" << tick_label(t) << "</text>\n";
  }
  const double band = bars ? (x1 - x0) / static_cast<double>(p.categories.size()) : 0;
  if (bars) {
    for (size_t c = 0; c < p.categories.size(); ++c)
      o << "<text x=\"" << coord(x0 + band * (c + 0.5)) << "\" y=\"" << y0 + 16
        << "\" text-anchor=\"middle\">" << esc(p.categories[c]) << "</text>\n";
  } else {
    for (double t : ax.ticks) {
      if (t < ax.lo || t > ax.hi) continue;
      const std::string x = coord(ax.map(t));
      o << "<line x1=\"" << x << "\" y1=\"" << y0 << "\" x2=\"" << x << "\" y2=\"" << y1
        << "\" stroke=\"#e0e0e0\"/>\n<text x=\"" << x << "\" y=\"" << y0 + 16 << "\" text-anchor=\"middle\">"
        << tick_label(t) << "</text>\n";
    }
  }
  o << "<rect x=\"" << x0 << "\" y=\"" << y1 << "\" width=\"" << x1 - x0 << "\" height=\"" << y0 - y1
    << "\" fill=\"none\" stroke=\"#444\"/>\n";
  o << "<text x=\"" << (x0 + x1) / 2 << "\" y=\"" << p.height - 10 << "\" text-anchor=\"middle\">"
    << esc(p.xlabel + (p.log_x && !bars ? " (log)" : "")) << "</text>\n";
  o << "<text transform=\"translate(16," << (y0 + y1) / 2 << ") rotate(-90)\" text-anchor=\"middle\">"
    << esc(p.ylabel + (p.log_y ? " (log)" : "")) << "</text>\n";
  if (!have_data)
    o << "<text x=\"" << (x0 + x1) / 2 << "\" y=\"" << (y0 + y1) / 2
      << "\" text-anchor=\"middle\">no data</text>\n";

  // Data.
  const size_t ns = p.series.size();
  for (size_t si = 0; si < ns; ++si) {
    const Series& s = p.series[si];
    const char* col = kColors[si % std::size(kColors)];
    if (bars) {
      const double w = band * 0.8 / static_cast<double>(std::max<size_t>(ns, 1));
      const double base = ay.map(p.log_y ? ay.lo : std::clamp(0.0, ay.lo, ay.hi));
      for (size_t c = 0; c < s.y.size(); ++c) {
        if (!ay.usable(s.y[c])) continue;
        const double xl = x0 + band * (c + 0.1) + w * static_cast<double>(si), yv = ay.map(s.y[c]);
        o << "<rect x=\"" << coord(xl) << "\" y=\"" << coord(std::min(yv, base)) << "\" width=\"" << coord(w)
          << "\" height=\"" << coord(std::abs(base - yv)) << "\" fill=\"" << col << "\"><title>"
          << esc(s.name) << " " << esc(p.categories[c]) << ": " << tick_label(s.y[c]) << "</title></rect>\n";
      }
      continue;
    }
    std::string path;
    bool pen = false;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!ax.usable(s.x[i]) || !ay.usable(s.y[i])) {
        pen = false;
        continue;
      }
      path +=
          (pen ? " L" : (path.empty() ? "M" : " M")) + coord(ax.map(s.x[i])) + "," + coord(ay.map(s.y[i]));
      pen = true;
    }
    if (s.style != SeriesStyle::points && !path.empty())
      o << "<path d=\"" << path << "\" fill=\"none\" stroke=\"" << col << "\" stroke-width=\"1.6\"/>\n";
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!ax.usable(s.x[i]) || !ay.usable(s.y[i])) continue;
      const std::string cx = coord(ax.map(s.x[i]));
      if (!s.y_err.empty() && std::isfinite(s.y_err[i])) {
        const double lo = s.y[i] - s.y_err[i], hi = s.y[i] + s.y_err[i];
        if (ay.usable(lo) && ay.usable(hi))
          o << "<line x1=\"" << cx << "\" y1=\"" << coord(ay.map(lo)) << "\" x2=\"" << cx << "\" y2=\""
            << coord(ay.map(hi)) << "\" stroke=\"" << col << "\"/>\n";
      }
      if (s.style != SeriesStyle::line)
        o << "<circle cx=\"" << cx << "\" cy=\"" << coord(ay.map(s.y[i])) << "\" r=\"2.8\" fill=\"" << col
          << "\"><title>" << esc(s.name) << ": (" << tick_label(s.x[i]) << ", " << tick_label(s.y[i])
          << ")</title></circle>\n";
    }
  }
  for (const HLine& h : p.hlines) {
    if (!ay.usable(h.y)) continue;
    const std::string y = coord(ay.map(h.y));
    o << "<line x1=\"" << x0 << "\" y1=\"" << y << "\" x2=\"" << x1 << "\" y2=\"" << y
      << "\" stroke=\"#666\" stroke-dasharray=\"5,4\"/>\n";
  }

  // Legend, right of the plot area.
  int ly = y1 + 6;
  for (size_t si = 0; si < ns; ++si, ly += 18) {
    const char* col = kColors[si % std::size(kColors)];
    o << "<rect x=\"" << x1 + 12 << "\" y=\"" << ly << "\" width=\"14\" height=\"10\" fill=\"" << col
      << "\"/><text x=\"" << x1 + 32 << "\" y=\"" << ly + 9 << "\">" << esc(p.series[si].name) << "</text>\n";
  }
  for (const HLine& h : p.hlines) {
    if (h.label.empty()) continue;
    o << "<line x1=\"" << x1 + 12 << "\" y1=\"" << ly + 5 << "\" x2=\"" << x1 + 26 << "\" y2=\"" << ly + 5
      << "\" stroke=\"#666\" stroke-dasharray=\"5,4\"/><text x=\"" << x1 + 32 << "\" y=\"" << ly + 9 << "\">"
      << esc(h.label) << "</text>\n";
    ly += 18;
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace resin::lab
