// Torch7 .t7 reader. No Debian package writes .t7 files, so the fixtures come from an independent
// Python writer of File.lua's format (tests/fixtures/make_t7_fixtures.py): generic.t7 is committed,
// the 15 MB OpenFace nn4.small2 model with random weights is generated at test time.
#include "facenet/io/torch7.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "facenet/io/convert.hpp"
#include "fixtures/expected_tensors.hpp"
#include "testing.hpp"

namespace fs = std::filesystem;
using facenet::format_error;
using facenet::io::mapping_report;

using facenet::testing::error_message;
using facenet::testing::fixture_path;

namespace {


using bytes = std::vector<std::uint8_t>;
void put_i32(bytes& b, std::int32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(static_cast<std::uint32_t>(v) >> (8 * i)));
}
void put_i64(bytes& b, std::int64_t v) {
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(v) >> (8 * i)));
}
void put_str(bytes& b, const std::string& s) {
  put_i32(b, static_cast<std::int32_t>(s.size()));
  b.insert(b.end(), s.begin(), s.end());
}
void put_torch(bytes& b, std::int32_t index, const std::string& cls) {
  put_i32(b, 4);
  put_i32(b, index);
  put_str(b, "V 1");
  put_str(b, cls);
}

std::string write_temp_t7(const std::string& tag, const bytes& b) {
  const fs::path p = fs::temp_directory_path() / ("facenet_t7_" + tag + "_" + std::to_string(::getpid()) + ".t7");
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  return p.string();
}

// Generates the full-size nn4.small2 fixture once per run with Debian's python3 (numpy only).
std::string nn4_fixture() {
  static const std::string path = [] {
    const fs::path dir = fs::path(FACENET_BINARY_DIR) / "t7_fixtures";
    const std::string cmd = "/usr/bin/python3 '" + (facenet::testing::source_dir() / "tests/fixtures/make_t7_fixtures.py").string() +
                            "' --nn4 '" + dir.string() + "' >/dev/null 2>&1";
    return std::system(cmd.c_str()) == 0 ? (dir / "nn4_small2").string() : std::string();
  }();
  return path;
}

}  // namespace

TEST(torch7, generic_values_back_references_and_cycles) {
  const facenet::io::t7::file f(fixture_path("t7/generic.t7"));
  const auto& root = f.root();
  ASSERT_EQ(root.k, facenet::io::t7::kind::object);
  EXPECT_EQ(root.text, "nn.Sequential");
  EXPECT_EQ(f.at(f.field(root, "name")).text, "generic");
  EXPECT_TRUE(f.at(f.field(root, "flag")).boolean);
  EXPECT_EQ(f.at(f.field(root, "hook")).k, facenet::io::t7::kind::function);
  EXPECT_EQ(&f.at(f.field(root, "parent")), &root);  // cycle resolved to the same object
  const auto modules = f.array_items(f.at(f.field(root, "modules")));
  ASSERT_EQ(modules.size(), 4u);
  EXPECT_EQ(f.field(root, "shared"), modules[0]);  // back-reference, not a copy
  EXPECT_EQ(f.at(modules[3]).text, "nn.Identity");
}

TEST(torch7, parameters_honour_storage_offsets_strides_and_doubles) {
  const auto m = facenet::io::read_torch7(fixture_path("t7/generic.t7"));
  facenet::testing::expect_matches(m, facenet::testing::read_expected(fixture_path("t7/generic.expected")));
  const auto modules = facenet::io::read_torch7_modules(fixture_path("t7/generic.t7"));
  ASSERT_EQ(modules.size(), 3u);
  EXPECT_EQ(modules[1].path, "2.1");
  EXPECT_EQ(modules[1].class_name, "nn.Linear");
}

TEST(torch7, openface_nn4_small2_maps_onto_the_parameter_table) {
  const std::string prefix = nn4_fixture();
  if (prefix.empty()) GTEST_SKIP() << "SKIPPED: /usr/bin/python3 with numpy could not generate the nn4.small2 fixture";
  mapping_report report;
  const auto m = facenet::io::read_openface_t7(prefix + ".t7", report);
  facenet::testing::expect_matches(m, facenet::testing::read_expected(prefix + ".expected"));
  EXPECT_TRUE(report.complete());
  EXPECT_EQ(report.mapped.size(), 224u);
  const auto& params = facenet::io::nn4_small2_parameters();
  for (std::size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(m.entries()[i].name, params[i].name);
    EXPECT_EQ(m.entries()[i].value.shape(), params[i].dims) << params[i].name;
  }
}

TEST(torch7, converter_detects_torch7_and_fits_nn4_small2) {
  const std::string prefix = nn4_fixture();
  if (prefix.empty()) GTEST_SKIP() << "SKIPPED: /usr/bin/python3 with numpy could not generate the nn4.small2 fixture";
  facenet::io::conversion_report report;
  const auto out = facenet::io::prepare_conversion(prefix + ".t7", {}, report);
  EXPECT_EQ(report.format, "torch7");
  EXPECT_EQ(report.arch, "nn4_small2");
  EXPECT_TRUE(report.ok()) << report.problems();
  EXPECT_TRUE(report.unused.empty());
  EXPECT_EQ(report.converted.size(), 224u);
  EXPECT_EQ(out.metadata.at("standardization"), "unit");
}

TEST(torch7, non_nn4_model_is_rejected_by_the_nn4_mapping) {
  mapping_report report;
  const std::string msg = error_message<facenet::format_error>([&] { facenet::io::read_openface_t7(fixture_path("t7/generic.t7"), report); });
  EXPECT_NE(msg.find("3 modules with parameters, nn4.small2 has 75"), std::string::npos) << msg;
}

TEST(torch7, pre_2016_running_std_becomes_running_var) {
  // nn before 2016 stored running_std = 1/sqrt(var + eps); nn's own BN:read converts it the same way.
  facenet::io::t7::module_params m{"2", "nn.SpatialBatchNormalization", {}, 1e-3};
  for (const char* f : {"weight", "bias", "running_mean"}) m.tensors[f] = facenet::Tensor<float>::full({64}, 0.5f);
  m.tensors["running_std"] = facenet::Tensor<float>::full({64}, 2.0f);
  facenet::io::tensor_map out;
  mapping_report report;
  facenet::io::t7::map_nn4_layer(m, facenet::io::nn4_small2_layers()[1], out, report, "old.t7");
  EXPECT_TRUE(report.complete());
  EXPECT_FLOAT_EQ(out.at("bn1.running_var").data()[63], 0.25f - 1e-3f);
  m.class_name = "nn.ReLU";
  const std::string msg = error_message<facenet::format_error>([&] {
    facenet::io::tensor_map o;
    facenet::io::t7::map_nn4_layer(m, facenet::io::nn4_small2_layers()[1], o, report, "old.t7");
  });
  EXPECT_NE(msg.find("module 2 is a nn.ReLU where nn4.small2 has layer 'bn1'"), std::string::npos) << msg;
}

TEST(torch7_hostile, every_truncation_is_a_format_error) {
  const bytes full = facenet::io::read_file_bytes(fixture_path("t7/generic.t7"));
  for (std::size_t n = 0; n < full.size(); ++n) {
    bytes prefix(full.begin(), full.begin() + static_cast<long>(n));
    EXPECT_THROW(facenet::io::torch7_parameters(facenet::io::t7::file(std::move(prefix), "prefix")), format_error)
        << "prefix of " << n << " bytes";
  }
}

TEST(torch7_hostile, corrupted_bytes_never_escape_as_anything_but_facenet_errors) {
  const bytes full = facenet::io::read_file_bytes(fixture_path("t7/generic.t7"));
  static constexpr std::uint8_t masks[] = {0x01, 0x80, 0xff};
  for (std::size_t i = 0; i < 3 * full.size(); ++i) {
    bytes b = full;
    b[i / 3] ^= masks[i % 3];
    try {
      facenet::io::torch7_parameters(facenet::io::t7::file(std::move(b), "flipped"));
    } catch (const facenet::error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "byte " << i / 3 << " mask " << int(masks[i % 3]) << ": " << e.what();
    }
  }
}

TEST(torch7_hostile, deep_nesting_huge_storage_and_views_outside_storage) {
  bytes deep;
  for (int i = 1; i <= 400; ++i) {  // {[1] = {[1] = ...}}
    put_i32(deep, 3);
    put_i32(deep, i);
    put_i32(deep, 1);
    put_i32(deep, 1);
    deep.resize(deep.size() + 8, 0);  // key: number 0.0
  }
  put_i32(deep, 0);
  EXPECT_NE(error_message<facenet::format_error>([&] { facenet::io::t7::file(write_temp_t7("deep", deep)); }).find("nested deeper"), std::string::npos);

  bytes huge;
  put_torch(huge, 1, "torch.FloatStorage");
  put_i64(huge, std::int64_t{1} << 40);
  const std::string h = error_message<facenet::format_error>([&] { facenet::io::t7::file(write_temp_t7("huge", huge)); });
  EXPECT_NE(h.find("storage declares 1099511627776 elements"), std::string::npos) << h;

  // nn.Linear whose weight [2,2] with strides [4,1] from (1-based) offset 3 runs past a 6-element storage.
  bytes view;
  put_torch(view, 1, "nn.Linear");
  put_i32(view, 3);
  put_i32(view, 2);
  put_i32(view, 1);
  put_i32(view, 2);
  put_str(view, "weight");
  put_torch(view, 3, "torch.FloatTensor");
  put_i32(view, 2);
  for (std::int64_t v : {2, 2, 4, 1, 3}) put_i64(view, v);
  put_torch(view, 4, "torch.FloatStorage");
  put_i64(view, 6);
  view.resize(view.size() + 24, 0);
  const std::string v = error_message<facenet::format_error>([&] { facenet::io::read_torch7(write_temp_t7("view", view)); });
  EXPECT_NE(v.find("reaches element 7 of a 6-element storage"), std::string::npos) << v;

  bytes many;  // a table of 2^20 numbers: small on disk, far more as decoded values
  put_i32(many, 3);
  put_i32(many, 1);
  put_i32(many, 1 << 20);
  for (int i = 0; i < (1 << 20); ++i) {
    put_i32(many, 1);  // key: number 0.0
    put_i64(many, 0);
    put_i32(many, 0);  // value: nil
  }
  const std::string mm = error_message<facenet::format_error>([&] { facenet::io::t7::file(std::move(many), "many.t7"); });
  EXPECT_NE(mm.find("more than 1048576 objects"), std::string::npos) << mm;

  bytes unknown;
  put_i32(unknown, 42);
  EXPECT_NE(error_message<facenet::format_error>([&] { facenet::io::t7::file(write_temp_t7("type", unknown)); }).find("unknown Torch7 object type 42"),
            std::string::npos);
}
