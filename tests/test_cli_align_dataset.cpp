// `facenet align --dataset`: a folder-per-identity dataset in, the same tree of aligned faces out
// (the preparation step before `facenet train`). Symlinked images must not make it write next to
// their targets (fs::relative resolves symlinks; the tool must not).
#include <filesystem>
#include <string>
#include <vector>

#include "facenet/data/image.hpp"
#include "facenet/data/image_io.hpp"
#include "cli_testing.hpp"

namespace fs = std::filesystem;
using namespace cli_testing;

namespace {

// dataset/<person>/1.jpg as symlinks to the shared photos, plus one identity whose only image has no face.
fs::path make_dataset(const fs::path& photos, const std::vector<std::string>& people) {
  const fs::path root = scratch_dir() / "dataset";
  fs::remove_all(root);
  for (const auto& p : people) {
    fs::create_directories(root / p);
    fs::create_symlink(photos / p / "1.jpg", root / p / "1.jpg");
  }
  fs::create_directories(root / "nobody");
  const facenet::data::image grey(64, 64, 3, 128);
  facenet::data::save_png(grey, (root / "nobody" / "blank.png").string());
  return root;
}

}  // namespace

TEST(cli_align_dataset, mirrors_the_tree_with_the_main_face) {
  const fs::path photos = shared() / "images/test_images";
  REQUIRE_SHARED_PATH(photos / "kate_siegel/1.jpg");
  REQUIRE_SHARED_PATH(shared() / "weights/mtcnn/facenet-pytorch");
  const std::vector<std::string> people = {"angelina_jolie", "kate_siegel"};
  for (const auto& p : people) REQUIRE_SHARED_PATH(photos / p / "1.jpg");
  const fs::path root = make_dataset(photos, people), out = scratch_dir() / "aligned_dataset";
  fs::remove_all(out);
  const std::string cmd = "align --dataset --size 96 --mtcnn " + q(shared() / "weights/mtcnn/facenet-pytorch") + " " + q(root) +
                          " --out " + q(out);
  const run_result r = run(cmd);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const auto& p : people) {
    const auto img = facenet::data::load_image((out / p / "1.png").string());
    EXPECT_EQ(img.width, 96);
    EXPECT_EQ(img.height, 96);
    EXPECT_FALSE(fs::exists(photos / p / "1.png")) << "wrote beside the symlink's target";
  }
  EXPECT_FALSE(fs::exists(out / "nobody"));
  EXPECT_NE(r.err.find("no face in"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 of 3 images aligned"), std::string::npos) << r.err;

  // A second run keeps what is there (continuing an interrupted run) and writes nothing else.
  const auto before = fs::last_write_time(out / "kate_siegel" / "1.png");
  const run_result again = run(cmd);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(fs::last_write_time(out / "kate_siegel" / "1.png"), before);
}

TEST(cli_align_dataset, argument_errors) {
  const fs::path d = scratch_dir() / "two_roots";
  fs::create_directories(d / "a");
  fs::create_directories(d / "b");
  EXPECT_EQ(run("align --dataset " + q(d / "a") + " " + q(d / "b") + " --out " + q(d / "o")).code, 2);
  EXPECT_EQ(run("align --dataset " + q(d / "missing") + " --out " + q(d / "o")).code, 3);
}
