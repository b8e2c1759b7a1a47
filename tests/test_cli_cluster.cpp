// `facenet cluster` run as a subprocess: help and argument errors (before any slow work), exit
// codes per error kind, JSON and --out folders from --embeddings equal to the library's clustering,
// the image path equal to `embed` + `cluster --embeddings`, faces that are not found, and weights of
// the wrong architecture. Tests needing the shared photos / weights skip visibly without them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cli_testing.hpp"
#include "facenet/data/image_io.hpp"
#include "facenet/eval/cluster.hpp"
#include "facenet/io/json.hpp"

namespace fs = std::filesystem;
using namespace cli_testing;

namespace {

// Three tight identities of five rows and two far outliers, as unit vectors in 16-D, shuffled.
facenet::Tensor<float> embeddings() {
  std::mt19937 rng(5);
  std::normal_distribution<float> g;
  std::vector<int> ids = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 4};
  std::shuffle(ids.begin(), ids.end(), rng);
  facenet::Tensor<float> centres({5, 16}), e({static_cast<std::int64_t>(ids.size()), 16});
  for (auto& v : centres) v = g(rng);
  for (std::int64_t r = 0; r < e.size(0); ++r) {
    float n = 0;
    for (std::int64_t k = 0; k < 16; ++k) {
      e(r, k) = centres(ids[static_cast<std::size_t>(r)], k) + 0.05f * g(rng);
      n += e(r, k) * e(r, k);
    }
    for (std::int64_t k = 0; k < 16; ++k) e(r, k) /= std::sqrt(n);
  }
  return e;
}

// One tiny PNG per row (its content is irrelevant: --embeddings stands for it) and a names file.
// Rows `twin` and `twin2` share a file name in different folders: --out must keep both.
std::vector<std::string> row_images(const fs::path& dir, std::int64_t n, const fs::path& names_file, std::int64_t twin,
                                    std::int64_t twin2) {
  fs::create_directories(dir);
  std::vector<std::string> names;
  std::ofstream list(names_file);
  for (std::int64_t i = 0; i < n; ++i) {
    const fs::path p = i == twin    ? dir / "a" / "twin.png"
                       : i == twin2 ? dir / "b" / "twin.png"
                                    : dir / "a" / ("row" + std::to_string(i) + ".png");
    fs::create_directories(p.parent_path());
    facenet::data::save_png(facenet::data::image(4, 4, 3, static_cast<std::uint8_t>(i)), p.string());
    names.push_back(p.string());
    list << p.string() << '\n';
  }
  return names;
}

std::vector<std::vector<std::string>> named(const std::vector<std::vector<std::int64_t>>& clusters,
                                            const std::vector<std::string>& names) {
  std::vector<std::vector<std::string>> out;
  for (const auto& c : clusters) {
    out.emplace_back();
    for (std::int64_t r : c) out.back().push_back(names[static_cast<std::size_t>(r)]);
  }
  return out;
}

const facenet::io::json_value& member(const facenet::io::json_value& doc, const std::string& key) {
  const facenet::io::json_value* v = doc.find(key);
  if (!v) throw std::runtime_error("the output has no \"" + key + "\"");
  return *v;
}

std::vector<std::string> strings(const facenet::io::json_value& v, const std::string& what) {
  std::vector<std::string> out;
  for (const auto& s : v.as_array(what)) out.push_back(s.as_string(what));
  return out;
}

std::vector<std::vector<std::string>> json_clusters(const facenet::io::json_value& doc) {
  std::vector<std::vector<std::string>> out;
  for (const auto& c : member(doc, "clusters").as_array("clusters")) out.push_back(strings(c, "cluster"));
  return out;
}

// File names in a folder, sorted (symlinks included).
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> out;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

void expect_error(const run_result& r, int code, const std::string& needle) {
  EXPECT_EQ(r.code, code) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

}  // namespace

TEST(cli_cluster, help_and_argument_errors) {
  const run_result help = run("cluster --help");
  EXPECT_EQ(help.code, 0);
  for (const char* s : {"usage: facenet cluster", "--method M       chinese-whispers", "--align M        crop",
                        "--eps E", "--min-samples M", "--out DIR", "--embeddings E", "--threads N"})
    EXPECT_NE(help.out.find(s), std::string::npos) << s << " missing from:\n" << help.out;
  EXPECT_NE(run("--help").out.find("cluster "), std::string::npos);
  // Argument errors come before weights or images are even looked at (they do not exist here).
  const std::string missing = " --weights /nonexistent/w.safetensors /nonexistent/faces";
  expect_error(run("cluster --method kmeans" + missing), 2, "chinese-whispers or dbscan, not 'kmeans'");
  expect_error(run("cluster --threshold -1" + missing), 2, "threshold must be a finite number >= 0");
  expect_error(run("cluster --threshold nan" + missing), 2, "threshold must be");
  expect_error(run("cluster --method dbscan --eps -0.5" + missing), 2, "eps must be");
  expect_error(run("cluster --method dbscan --min-samples 0" + missing), 2, "min_samples must be >= 1, got 0");
  expect_error(run("cluster --iterations -3" + missing), 2, "iterations must be >= 0");
  expect_error(run("cluster --symlink" + missing), 2, "--symlink needs --out DIR");
  expect_error(run("cluster --threads 0" + missing), 2, "--threads must be in [1, 1024]");
  expect_error(run("cluster --method similarity" + missing), 2, "chinese-whispers or dbscan");
  expect_error(run("cluster --weights w.safetensors"), 2, "no FOLDER or IMAGE given");
  expect_error(run("cluster --bogus 1 x.png"), 2, "unknown option --bogus");
  // Missing inputs are io errors naming the path.
  expect_error(run("cluster" + missing), 3, "/nonexistent/faces");
  expect_error(run("cluster --embeddings /nonexistent/e.npy"), 3, "/nonexistent/e.npy");
}

TEST(cli_cluster, embeddings_json_and_out_folders_match_the_library) {
  const fs::path dir = scratch_dir() / "cluster_rows";
  fs::remove_all(dir);
  const facenet::Tensor<float> e = embeddings();
  const fs::path npy = dir / "e.npy", names_file = dir / "names.txt";

  // DBSCAN: three identities, two outliers as noise, copied into folders.
  facenet::eval::dbscan_options d;
  d.eps = 0.7;
  const auto want_d = facenet::eval::dbscan(e, d);
  ASSERT_EQ(want_d.clusters.size(), 3u);
  ASSERT_EQ(want_d.noise.size(), 2u);
  const auto names = row_images(dir / "img", e.size(0), names_file, want_d.clusters[0][0], want_d.clusters[0][1]);
  write_npy(npy, e);
  const fs::path out = dir / "out_dbscan";
  const run_result r = run("cluster --embeddings " + q(npy) + " --names " + q(names_file) +
                           " --method dbscan --eps 0.7 --out " + q(out));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto doc = facenet::io::parse_json(r.out, "cluster output");
  EXPECT_EQ(member(doc, "method").as_string("method"), "dbscan");
  EXPECT_EQ(json_clusters(doc), named(want_d.clusters, names));
  EXPECT_EQ(strings(member(doc, "noise"), "noise"), named({want_d.noise}, names)[0]);
  EXPECT_TRUE(strings(member(doc, "no_face"), "no_face").empty());
  for (std::size_t k = 0; k < 3; ++k) {
    std::vector<std::string> want;
    for (std::int64_t row : want_d.clusters[k]) {
      const fs::path p = names[static_cast<std::size_t>(row)];
      const bool clash = std::count(want.begin(), want.end(), p.filename().string()) > 0;
      want.push_back(clash ? std::to_string(row) + "_" + p.filename().string() : p.filename().string());
      EXPECT_FALSE(fs::is_symlink(out / ("cluster_" + std::to_string(k)) / want.back()));
    }
    std::sort(want.begin(), want.end());
    EXPECT_EQ(listing(out / ("cluster_" + std::to_string(k))), want) << "cluster " << k;
  }
  EXPECT_EQ(listing(out / "cluster_0").front(), std::to_string(want_d.clusters[0][1]) + "_twin.png");
  EXPECT_EQ(listing(out / "noise").size(), 2u);
  EXPECT_FALSE(fs::exists(out / "cluster_3"));
  // The same --out again: refuses to mix with an earlier result.
  expect_error(run("cluster --embeddings " + q(npy) + " --names " + q(names_file) + " --out " + q(out)), 2,
               "exists and is not an empty folder");

  // Chinese Whispers (names as positional IMAGE arguments, symlinks): outliers become singletons.
  facenet::eval::chinese_whispers_options cw;
  cw.threshold = 0.7;
  cw.seed = 4;
  const auto want_cw = facenet::eval::chinese_whispers(e, cw);
  ASSERT_EQ(want_cw.clusters.size(), 5u);
  std::string images;
  for (const auto& n : names) images += " " + q(n);
  const fs::path out_cw = dir / "out_cw";
  const run_result w = run("cluster --embeddings " + q(npy) + " --threshold 0.7 --seed 4 --symlink --out " + q(out_cw) + images);
  ASSERT_EQ(w.code, 0) << w.err;
  const auto wdoc = facenet::io::parse_json(w.out, "cluster output");
  EXPECT_EQ(member(wdoc, "method").as_string("method"), "chinese-whispers");
  EXPECT_EQ(json_clusters(wdoc), named(want_cw.clusters, names));
  EXPECT_TRUE(strings(member(wdoc, "noise"), "noise").empty());
  const fs::path link = out_cw / "cluster_4" / fs::path(names[static_cast<std::size_t>(want_cw.clusters[4][0])]).filename();
  EXPECT_TRUE(fs::is_symlink(link)) << link;
  EXPECT_TRUE(fs::equivalent(link, names[static_cast<std::size_t>(want_cw.clusters[4][0])]));

  // Without names the rows are numbered.
  const run_result numbered = run("cluster --embeddings " + q(npy) + " --method dbscan --eps 0.7");
  ASSERT_EQ(numbered.code, 0) << numbered.err;
  std::vector<std::string> rows;
  for (std::size_t i = 0; i < names.size(); ++i) rows.push_back(std::to_string(i));
  EXPECT_EQ(json_clusters(facenet::io::parse_json(numbered.out)), named(want_d.clusters, rows));
}

TEST(cli_cluster, bad_embeddings_files) {
  const fs::path dir = scratch_dir() / "cluster_bad";
  fs::create_directories(dir);
  facenet::Tensor<float> e = embeddings();
  const fs::path npy = dir / "e.npy";
  write_npy(npy, e);
  expect_error(run("cluster --embeddings " + q(npy) + " a.png b.png"), 2, "has 17 rows but 2 names were given");
  expect_error(run("cluster --embeddings " + q(npy) + " --names " + q(npy) + " a.png"), 2, "--names LIST or IMAGE..., not both");
  expect_error(run("cluster --embeddings " + q(npy) + " --out " + q(dir / "o")), 3, "'0' is not an image file");
  e(3, 5) = std::numeric_limits<float>::quiet_NaN();
  write_npy(npy, e);
  expect_error(run("cluster --embeddings " + q(npy)), 7, "row 3 has a non-finite value at column 5");
  write_npy(npy, facenet::Tensor<float>({2, 3, 4}));
  expect_error(run("cluster --embeddings " + q(npy)), 5, "expected N x D embeddings, got [2, 3, 4]");
  { std::ofstream(dir / "junk.npy") << "not an npy"; }
  EXPECT_EQ(run("cluster --embeddings " + q(dir / "junk.npy")).code, 4);
}

TEST(cli_cluster, images_give_the_same_clusters_as_embed_then_cluster) {
  // Three ORL people, ten photos each, as already aligned faces (--no-detect). The weights are
  // random, so the clusters say nothing about identity; the test is that a folder of images goes
  // through the same embedding path as `facenet embed`, row for row.
  const fs::path orl = shared() / "data/orl";
  if (!fs::exists(orl / "s3/10.pgm")) GTEST_SKIP() << "shared ORL faces not present at " << orl;
  const fs::path dir = scratch_dir() / "cluster_orl";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string folders;
  for (const char* s : {"s1", "s2", "s3"}) folders += " " + q(orl / s);
  const std::string weights = " --weights " + q(nn4_weights()) + " --no-detect";
  const run_result embed = run("embed" + weights + " --output " + q(dir / "e.npy") + [&] {
    std::string images;  // the order `cluster` uses for folders: sorted paths
    for (const char* s : {"s1", "s2", "s3"}) {
      std::vector<std::string> files;
      for (const auto& f : fs::directory_iterator(orl / s)) files.push_back(f.path().string());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) images += " " + q(f);
    }
    return images;
  }());
  ASSERT_EQ(embed.code, 0) << embed.err;
  for (const char* method : {"chinese-whispers", "dbscan"}) {
    const std::string opts = std::string(" --method ") + method + " --threshold 0.3 --eps 0.3 --min-samples 2";
    const run_result from_images = run("cluster" + weights + opts + " --threads 2" + folders);
    ASSERT_EQ(from_images.code, 0) << from_images.err;
    const auto doc = facenet::io::parse_json(from_images.out, "cluster output");
    std::vector<std::string> seen = strings(member(doc, "noise"), "noise");
    for (const auto& c : json_clusters(doc)) seen.insert(seen.end(), c.begin(), c.end());
    EXPECT_EQ(seen.size(), 30u) << method;
    // Same clusters from the embeddings `embed` wrote, named by the same (sorted) image paths.
    std::string names;
    std::vector<std::string> sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    for (const auto& s : sorted) names += " " + q(s);
    const run_result from_npy = run("cluster --embeddings " + q(dir / "e.npy") + opts + names);
    ASSERT_EQ(from_npy.code, 0) << from_npy.err;
    EXPECT_EQ(from_images.out, from_npy.out) << method;
  }
}

TEST(cli_cluster, faces_not_found_and_wrong_weights) {
  const fs::path mtcnn = shared() / "weights/mtcnn/facenet-pytorch/pnet.pt";
  const fs::path photo = shared() / "images/test_images/kate_siegel/1.jpg";
  if (!fs::exists(mtcnn) || !fs::exists(photo)) GTEST_SKIP() << "shared MTCNN weights or photos not present";
  const fs::path dir = scratch_dir() / "cluster_faces";
  fs::remove_all(dir);
  fs::create_directories(dir / "grey");
  const fs::path grey = dir / "grey" / "grey.png";
  facenet::data::save_png(facenet::data::image(200, 200, 3, 128), grey.string());
  // A folder of pictures without faces: exit 8.
  expect_error(run("cluster --weights " + q(nn4_weights()) + " " + q(dir / "grey")), 8, "no face found in any of the 1 images");
  // A faceless picture next to a photo: skipped, listed, and said on stderr.
  const run_result r = run("cluster --weights " + q(nn4_weights()) + " " + q(grey) + " " + q(photo));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto doc = facenet::io::parse_json(r.out, "cluster output");
  EXPECT_EQ(strings(member(doc, "no_face"), "no_face"), std::vector<std::string>{grey.string()});
  EXPECT_EQ(json_clusters(doc), std::vector<std::vector<std::string>>{{photo.string()}});
  EXPECT_NE(r.err.find("no face found in '" + grey.string() + "', skipped"), std::string::npos) << r.err;
  // MTCNN weights given as the embedding network.
  expect_error(run("cluster --no-detect --weights " + q(mtcnn) + " " + q(photo)), 4, "not an embedding network");
}
