// Replays the fuzz corpora through the fuzz targets' own entry points (tests/fuzz/fuzz_entry_points.hpp)
// under the normal build: every seed in tests/fuzz/corpus/<target>/ is a genuine file and must parse;
// every input in tests/fuzz/regressions/<target>/ once crashed, hung or exhausted memory in a fuzz
// target and must now end in success or a facenet::error (any other exception fails the test, and the
// sanitizer build turns memory errors into failures).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_entry_points.hpp"

namespace fs = std::filesystem;

namespace {

const fs::path fuzz_dir = fs::path(FACENET_SOURCE_DIR) / "tests" / "fuzz";

std::vector<std::uint8_t> file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> out;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Runs every file under <kind>/<target>/ and returns how many there were; `must_parse` demands success.
int replay(const std::string& kind, bool must_parse) {
  int files = 0;
  for (const fs::path& dir : sorted_entries(fuzz_dir / kind)) {
    const facenet::fuzz::entry_point* entry = facenet::fuzz::find_entry_point(dir.filename().string());
    EXPECT_NE(entry, nullptr) << dir << " names no fuzz entry point";
    if (!entry) continue;
    for (const fs::path& file : sorted_entries(dir)) {
      SCOPED_TRACE(file.string());
      const std::vector<std::uint8_t> bytes = file_bytes(file);
      const bool parsed = facenet::fuzz::consume(*entry, bytes.data(), bytes.size());
      if (must_parse && !parsed) {  // run again outside consume() so the failure shows the reader's message
        EXPECT_NO_THROW(entry->consume(bytes.data(), bytes.size()));
      }
      ++files;
    }
  }
  return files;
}

}  // namespace

TEST(fuzz_corpus, every_entry_point_has_genuine_seeds_that_parse) {
  for (const auto& e : facenet::fuzz::entry_points())
    EXPECT_FALSE(sorted_entries(fuzz_dir / "corpus" / e.name).empty()) << "no seed corpus for fuzz target " << e.name;
  EXPECT_GT(replay("corpus", true), 0);
}

TEST(fuzz_regressions, crash_inputs_end_in_success_or_a_facenet_error) {
  const int n = replay("regressions", false);
  if (n == 0) GTEST_SKIP() << "no regression inputs under " << (fuzz_dir / "regressions");
}

TEST(fuzz_corpus, a_damaged_seed_is_refused_with_a_facenet_error) {
  // The entry points must report refusals as facenet::error: cut a genuine seed short.
  const facenet::fuzz::entry_point* e = facenet::fuzz::find_entry_point("safetensors");
  ASSERT_NE(e, nullptr);
  std::vector<std::uint8_t> bytes = file_bytes(fuzz_dir / "corpus" / "safetensors" / "sample.safetensors");
  ASSERT_GT(bytes.size(), 20u);
  bytes.resize(bytes.size() - 3);
  EXPECT_FALSE(facenet::fuzz::consume(*e, bytes.data(), bytes.size()));
  EXPECT_THROW(e->consume(bytes.data(), bytes.size()), facenet::format_error);
}
