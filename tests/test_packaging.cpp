// What the build generates for packagers agrees with <facenet/version.hpp>, and nothing the repository
// builds with (-march, warnings) leaks into what consumers get. The consumer_* CTest tests build real
// projects against the package; these checks are the fast, precise part.
#include "facenet/version.hpp"

#include <fstream>
#include <sstream>
#include <string>

#include "testing.hpp"

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The rest of the line after the first occurrence of `key`, or "" when absent.
std::string value_after(const std::string& text, const std::string& key) {
  const auto at = text.find(key);
  if (at == std::string::npos) return "";
  const auto start = at + key.size();
  return text.substr(start, text.find('\n', start) - start);
}

std::string binary_file(const char* name) { return std::string(FACENET_BINARY_DIR) + "/" + name; }

}  // namespace

TEST(packaging, version_macros_agree) {
  const std::string expected = std::to_string(FACENET_VERSION_MAJOR) + "." + std::to_string(FACENET_VERSION_MINOR) +
                               "." + std::to_string(FACENET_VERSION_PATCH);
  EXPECT_EQ(facenet::version_string(), expected);
  EXPECT_EQ(FACENET_VERSION, FACENET_VERSION_MAJOR * 10000 + FACENET_VERSION_MINOR * 100 + FACENET_VERSION_PATCH);
  EXPECT_EQ(facenet::version_major, FACENET_VERSION_MAJOR);
  static_assert(FACENET_VERSION_MINOR < 100 && FACENET_VERSION_PATCH < 100, "FACENET_VERSION packs two digits each");
}

TEST(packaging, pkg_config_file) {
  const std::string pc = read_text(binary_file("facenet.pc"));
  EXPECT_EQ(value_after(pc, "\nVersion: "), facenet::version_string());
  const std::string requires_public = value_after(pc, "\nRequires: ");
  EXPECT_NE(requires_public.find("eigen3"), std::string::npos) << requires_public;
  EXPECT_NE(requires_public.find("xsimd"), std::string::npos) << requires_public;
  // stb is headers-only for us: private, so --libs never adds -lstb.
  EXPECT_EQ(requires_public.find("stb"), std::string::npos) << requires_public;
  EXPECT_EQ(value_after(pc, "\nRequires.private: "), "stb");
  EXPECT_NE(value_after(pc, "\nCflags: ").find("-fopenmp"), std::string::npos);
  EXPECT_NE(value_after(pc, "\nLibs: ").find("-fopenmp"), std::string::npos);
  EXPECT_EQ(pc.find("-march"), std::string::npos) << pc;
  // Relocatable: the prefix comes from the file's own location, not from configure time.
  EXPECT_EQ(value_after(pc, "prefix=").rfind("${pcfiledir}/", 0), 0u) << pc;
}

TEST(packaging, cmake_package_version) {
  const std::string version = read_text(binary_file("facenetConfigVersion.cmake"));
  EXPECT_NE(version.find("set(PACKAGE_VERSION \"" + std::string(facenet::version_string()) + "\")"), std::string::npos);
  const std::string config = read_text(binary_file("facenetConfig.cmake"));
  for (const char* dependency : {"find_dependency(Eigen3", "find_dependency(xsimd)", "find_dependency(OpenMP"})
    EXPECT_NE(config.find(dependency), std::string::npos) << dependency;
  EXPECT_EQ(config.find("-march"), std::string::npos);
}

TEST(packaging, meson_version_matches) {
  const std::string meson = read_text(std::string(FACENET_SOURCE_DIR) + "/meson.build");
  EXPECT_EQ(value_after(meson, "version: '"), std::string(facenet::version_string()) + "',");
}
