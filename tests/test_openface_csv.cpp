// nn4_small2 parameter table and the Keras-OpenFace CSV directory reader, against the real partial
// directory in ../shared/weights/openface-nn4.small2.v1-csv-partial/.
#include "facenet/io/openface_csv.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "facenet/io/convert.hpp"
#include "testing.hpp"

namespace fs = std::filesystem;
using facenet::io::mapping_report;

namespace {
const char* partial_dir = "weights/openface-nn4.small2.v1-csv-partial";

fs::path temp_dir(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("facenet_csv_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
}  // namespace

TEST(nn4_names, table_matches_the_released_graph) {
  const auto& params = facenet::io::nn4_small2_parameters();
  EXPECT_EQ(params.size(), 224u);
  // nn4.small2.def.lua: "Number of Parameters from net:getParameters() with embSize=128: 3733968"
  EXPECT_EQ(facenet::io::nn4_small2_trainable_count(), 3733968);
  EXPECT_EQ(params.front().name, "conv1.weight");
  EXPECT_EQ(params.front().dims, (facenet::shape{64, 3, 7, 7}));
  EXPECT_EQ(params.back().name, "dense.bias");
  // Torch order inside a block: 3x3 branch, 5x5 branch, pool branch, 1x1 branch.
  std::vector<std::string> block;
  for (const auto& p : params)
    if (p.name.rfind("inception_3a_", 0) == 0 && p.name.find(".weight") != std::string::npos && p.name.find("conv") != std::string::npos)
      block.push_back(p.name);
  EXPECT_EQ(block, (std::vector<std::string>{"inception_3a_3x3_conv1.weight", "inception_3a_3x3_conv2.weight",
                                             "inception_3a_5x5_conv1.weight", "inception_3a_5x5_conv2.weight",
                                             "inception_3a_pool_conv.weight", "inception_3a_1x1_conv.weight"}));
}

TEST(openface_csv, partial_directory_reports_exactly_the_five_missing_tensors) {
  FACENET_REQUIRE_SHARED(partial_dir);
  mapping_report report;
  const auto m = facenet::io::read_openface_csv_dir((facenet::testing::shared_dir() / partial_dir).string(), report);
  EXPECT_EQ(report.missing, (std::vector<std::string>{"inception_3c_3x3_conv2.weight", "inception_4e_3x3_conv2.weight",
                                                      "inception_5a_3x3_conv2.weight", "inception_5a_1x1_conv.weight",
                                                      "inception_5b_3x3_conv2.weight"}));
  EXPECT_EQ(report.unused, (std::vector<std::string>{"inception_5a_3x3_conv2_m.csv", "inception_5a_3x3_conv2_v.csv"}));
  EXPECT_EQ(m.size(), 219u);
  EXPECT_EQ(report.mapped.size(), 219u);
  EXPECT_EQ(m.at("dense.weight").shape(), (facenet::shape{128, 736}));
  EXPECT_EQ(m.at("inception_3a_5x5_conv2.weight").shape(), (facenet::shape{32, 16, 5, 5}));
  EXPECT_FLOAT_EQ(m.at("bn1.weight").data()[0], 0.90906465053558f);
  EXPECT_FLOAT_EQ(m.at("bn1.weight").data()[1], 0.61297827959061f);
  for (float v : m.at("bn3.running_var")) EXPECT_GT(v, 0.0f);
}

TEST(openface_csv, value_count_and_syntax_errors_name_the_file) {
  const fs::path d = temp_dir("bad");
  std::ofstream(d / "conv1_b.csv") << "1,2,3\n";  // 64 expected
  mapping_report report;
  try {
    facenet::io::read_openface_csv_dir(d.string(), report);
    ADD_FAILURE() << "no error";
  } catch (const facenet::format_error& e) {
    EXPECT_NE(std::string(e.what()).find("conv1_b.csv: expected 64 values for shape [64], found 3"), std::string::npos) << e.what();
  }
  std::ofstream(d / "conv1_b.csv", std::ios::trunc) << "1.5,2e-3,nope";
  try {
    facenet::io::read_openface_csv_dir(d.string(), report);
    ADD_FAILURE() << "no error";
  } catch (const facenet::format_error& e) {
    EXPECT_NE(std::string(e.what()).find("conv1_b.csv at offset 9: expected a number"), std::string::npos) << e.what();
  }
  EXPECT_THROW(facenet::io::read_openface_csv_dir((d / "absent").string(), report), facenet::io_error);
}

TEST(openface_csv, complete_directory_has_nothing_missing) {
  const fs::path d = temp_dir("full");
  for (const auto& p : facenet::io::nn4_small2_parameters()) {
    if (p.dims.numel() > 4096) continue;  // the small ones are enough to check naming both ways
    std::ofstream f(d / facenet::io::openface_csv::file_name(p.name));
    for (std::int64_t i = 0; i < p.dims.numel(); ++i) f << (i ? "," : "") << 0.5 * static_cast<double>(i);
  }
  mapping_report report;
  const auto m = facenet::io::read_openface_csv_dir(d.string(), report);
  EXPECT_TRUE(report.unused.empty());
  for (const auto& p : facenet::io::nn4_small2_parameters()) {
    const bool absent = std::find(report.missing.begin(), report.missing.end(), p.name) != report.missing.end();
    EXPECT_EQ(absent, p.dims.numel() > 4096) << p.name;
  }
  EXPECT_EQ(m.size() + report.missing.size(), 224u);
  EXPECT_EQ(m.at("dense.bias").data()[127], 63.5f);
}

TEST(openface_csv, converter_detects_the_directory_and_names_the_five_missing_tensors) {
  FACENET_REQUIRE_SHARED(partial_dir);
  facenet::io::conversion_report report;
  facenet::io::prepare_conversion((facenet::testing::shared_dir() / partial_dir).string(), {}, report);
  EXPECT_EQ(report.format, "openface-csv");
  EXPECT_EQ(report.arch, "nn4_small2");
  EXPECT_EQ(report.missing, (std::vector<std::string>{"inception_3c_3x3_conv2.weight", "inception_4e_3x3_conv2.weight",
                                                      "inception_5a_3x3_conv2.weight", "inception_5a_1x1_conv.weight",
                                                      "inception_5b_3x3_conv2.weight"}));
  EXPECT_EQ(report.unused, (std::vector<std::string>{"inception_5a_3x3_conv2_m.csv", "inception_5a_3x3_conv2_v.csv"}));
  EXPECT_EQ(report.converted.size(), 219u);
  EXPECT_TRUE(report.mismatched.empty());
  EXPECT_EQ(facenet::io::nn4_small2().parameter_count(), 3733968);
}
