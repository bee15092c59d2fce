// The lab framework: SVG writer, registry, verdicts and report files (the `resin lab` CLI is tested
// in tests/cli).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "../io/temp_dir.h"
#include "resin/io/atomic_file.h"
#include "resin/io/json.h"
#include "resin/lab/experiment.h"
#include "resin/lab/report.h"
#include "resin/lab/svg.h"

using namespace resin;
using namespace resin::lab;

namespace {

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) ++n;
  return n;
}

Experiment toy() {
  return {.name = "toy",
          .title = "a toy experiment",
          .claim = "two plus two is four",
          .paper = {{"2 + 2 = 4", Tag::paper}, {"remembered: 3 + 3 = 6", Tag::memory}},
          .criteria = {{"A", "sum equals 4"}, {"B", "never measured"}, {"C", "a number, shown", true}},
          .criteria_note = "fixed before any run",
          .run = [](const Context&, Results& r) {
            r.seeds({1000});
            r.protocol("added two and two");
            r.metric("sum", 4);
            r.metric("ratio, \"quoted\"", 0.5);
            r.check("A", true, "4");
            r.report("C", "42");
            r.table("t", "a table", {"x", "label"}).add({"1", "with, comma"});
            Plot p{.title = "line <&>", .xlabel = "x", .ylabel = "y"};
            p.series.push_back({.name = "s", .x = {1, 2}, .y = {3, 4}});
            r.plot("p", "a plot", p);
          }};
}

}  // namespace

TEST(LabSvg, LinePlotHasSeriesLegendAndEscapedText) {
  Plot p{.title = "a < b & c", .xlabel = "depth", .ylabel = "acf"};
  p.series.push_back({.name = "ff", .x = {1, 2, 4}, .y = {0.9, 0.5, 0.1}});
  p.series.push_back({.name = "res", .x = {1, 2, 4}, .y = {0.9, 0.8, 0.7}, .style = SeriesStyle::points});
  p.hlines.push_back({0.125, "band"});
  const std::string s = render_svg(p);
  EXPECT_EQ(s.rfind("<svg", 0), 0u);
  EXPECT_NE(s.find("</svg>"), std::string::npos);
  EXPECT_NE(s.find("a &lt; b &amp; c"), std::string::npos);
  EXPECT_EQ(count(s, "<path d="), 1u);  // only "ff" is drawn as a line
  EXPECT_EQ(count(s, "<circle"), 6u);   // both draw points
  EXPECT_NE(s.find(">band</text>"), std::string::npos);
  EXPECT_EQ(render_svg(p), s);  // deterministic
}

TEST(LabSvg, LogAxesSkipNonPositiveAndNonFinitePoints) {
  Plot p{.title = "t", .xlabel = "x", .ylabel = "y", .log_x = true, .log_y = true};
  p.series.push_back({.name = "s", .x = {1, 10, 100, 1000}, .y = {1e-3, 0, NAN, 1e2}});
  const std::string s = render_svg(p);
  EXPECT_EQ(count(s, "<circle"), 2u);
  EXPECT_EQ(count(s, " M"), 1u);  // the gap starts a new sub-path
  EXPECT_NE(s.find("(log)"), std::string::npos);
}

TEST(LabSvg, BarsAndErrors) {
  Plot p{.title = "bars", .xlabel = "", .ylabel = "n"};
  p.categories = {"a", "b", "c"};
  p.series.push_back({.name = "w", .y = {1, 2, 3}});
  p.series.push_back({.name = "m", .y = {2, 2, 2}});
  EXPECT_EQ(count(render_svg(p), "<rect x="), 6u + 1u + 2u);  // bars + frame + legend swatches
  p.series.push_back({.name = "bad", .y = {1}});
  EXPECT_THROW(render_svg(p), Error);
  Plot q{.title = "q"};
  q.series.push_back({.name = "s", .x = {1, 2}, .y = {1}});
  EXPECT_THROW(render_svg(q), Error);
  Plot empty{.title = "empty"};
  EXPECT_NE(render_svg(empty).find("no data"), std::string::npos);
}

TEST(LabSvg, Ticks) {
  EXPECT_EQ(nice_ticks(0, 1, 5), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  const auto t = nice_ticks(-3.7, 12.1);
  EXPECT_LE(t.front(), -3.7);
  EXPECT_GE(t.back(), 12.1);
  EXPECT_EQ(log_ticks(1, 100), (std::vector<double>{1, 2, 5, 10, 20, 50, 100}));
  const auto many = log_ticks(1e-17, 1);  // 17 decades: every 3rd, and the last
  ASSERT_EQ(many.size(), 7u);
  EXPECT_DOUBLE_EQ(many[1], 1e-14);
  EXPECT_EQ(many.back(), 1.0);
  EXPECT_THROW(log_ticks(0, 1), Error);
}

TEST(LabSvg, RangeOfAFewUlpsTerminates) {
  // Values 1 ulp apart once gave a tick step of ~5e-19 and a tick loop at k ≈ 2e17 where ++k does
  // not move: it never ended.
  const double lo = 0.1, hi = 0.10000000000000002;
  ASSERT_LT(lo, hi);
  EXPECT_EQ(nice_ticks(lo, hi), (std::vector<double>{lo, hi}));
  EXPECT_EQ(nice_ticks(0, 5e-324), (std::vector<double>{0, 5e-324}));
  const auto fine = nice_ticks(1e3, 1e3 + 1e-6);  // narrow but resolvable: ordinary ticks
  EXPECT_GE(fine.size(), 3u);
  EXPECT_LE(fine.size(), 8u);
  EXPECT_LE(fine.front(), 1e3);
  EXPECT_GE(fine.back(), 1e3 + 1e-6);
  Plot p{.title = "flat"};
  p.series.push_back({.name = "s", .x = {lo, hi}, .y = {lo, hi}});
  const std::string svg = render_svg(p);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  p.log_x = p.log_y = true;
  EXPECT_NE(render_svg(p).find("</svg>"), std::string::npos);
  Plot tiny{.title = "tiny"};
  tiny.series.push_back({.name = "s", .x = {0, 1}, .y = {0, 5e-324}});
  EXPECT_NE(render_svg(tiny).find("</svg>"), std::string::npos);
}

TEST(LabRegistry, NamesAreUniqueAndUnknownNamesListThem) {
  ASSERT_FALSE(experiments().empty());
  for (const auto& e : experiments()) {
    EXPECT_FALSE(e.criteria.empty()) << e.name;
    EXPECT_FALSE(e.paper.empty()) << e.name;
    EXPECT_EQ(&find_experiment(e.name), &e);
    std::set<std::string> ids;
    for (const auto& c : e.criteria) EXPECT_TRUE(ids.insert(c.id).second) << e.name << " repeats " << c.id;
  }
  try {
    find_experiment("e99");
    FAIL();
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("e4-shattered"), std::string::npos) << err.what();
  }
  EXPECT_THROW(register_experiment(experiments().front()), Error);  // duplicate name
  EXPECT_THROW(register_experiment({.name = "no-run"}), Error);
}

TEST(LabResults, VerdictsAreValidatedOnce) {
  Results r;
  r.criteria_ids = {"P1"};
  EXPECT_THROW(r.judge("P9", Verdict::reproduced, ""), Error);
  r.check("P1", false, "x");
  EXPECT_EQ(r.find("P1")->verdict, Verdict::not_reproduced);
  EXPECT_THROW(r.check("P1", true, "again"), Error);
  EXPECT_THROW(r.table("t", "", {"a"}).add({"1", "2"}), Error);
}

TEST(LabReport, WritesEveryFileAndMarksUnmeasuredCriteria) {
  resin::testing::TempDir dir;
  Context ctx{.out_dir = dir.file("toy"), .command = "resin lab toy --out X"};
  const RunSummary s = run_experiment(toy(), ctx);
  ASSERT_EQ(s.judgements.size(), 3u);
  EXPECT_EQ(s.judgements[0].verdict, Verdict::reproduced);
  EXPECT_EQ(s.judgements[1].id, "B");  // in the criteria's order, whatever order run() judged them
  EXPECT_EQ(s.judgements[1].verdict, Verdict::not_resolved);
  EXPECT_EQ(s.judgements[2].id, "C");
  EXPECT_EQ(s.judgements[2].verdict, Verdict::reported);
  for (const char* f : {"report.md", "metrics.json", "t.csv", "p.svg"})
    EXPECT_TRUE(std::filesystem::exists(ctx.out_dir + "/" + f)) << f;
  const std::string md = io::read_file(ctx.out_dir + "/report.md");
  for (const char* s :
       {"# toy: a toy experiment", "two plus two is four", "`[paper]`", "`[mem]`", "fixed before any run",
        "resin lab toy --out X", "Seeds: 1000", "**not resolved**", "not measured in this run",
        "![a plot](p.svg)", "[t.csv](t.csv)", "| 1 | with, comma |",
        "1 reproduced, 0 not reproduced, 1 not resolved, 1 report-only"})
    EXPECT_NE(md.find(s), std::string::npos) << "missing: " << s << "\n" << md;
  const io::JsonValue j = io::parse_json(io::read_file(ctx.out_dir + "/metrics.json"), "metrics.json");
  EXPECT_EQ(j.find("experiment")->string, "toy");
  EXPECT_EQ(j.find("metrics")->find("sum")->integer + j.find("metrics")->find("sum")->number, 4);
  EXPECT_EQ(j.find("verdicts")->array.size(), 3u);
  EXPECT_EQ(j.find("seeds")->array[0].integer, 1000);
  EXPECT_EQ(io::read_file(ctx.out_dir + "/t.csv"), "x,label\n1,\"with, comma\"\n");
}
