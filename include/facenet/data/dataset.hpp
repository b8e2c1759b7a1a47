// Folder-per-identity face datasets (LFW, ORL, CASIA/VGGFace2 layouts): root/<person>/<image>.
// Identities and images are sorted by name so labels never depend on directory order, and an
// identity list (LFW View 1 "peopleDevTrain.txt": a count line, then "name count" lines; or one name
// per line) restricts the dataset to one side of an identity split.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"

namespace facenet::data {

struct identity {
  std::string name;
  std::vector<std::string> images;  // full paths, sorted
};

struct sample {
  std::string path;
  int label = 0;  // index of the identity in the dataset
};

inline const std::vector<std::string>& default_image_extensions() {
  static const std::vector<std::string> ext = {".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp"};
  return ext;
}

// Names from an identity list. Accepts LFW View 1 people files (first line = count, checked) and
// plain lists (one name per line, optional trailing columns); '#' starts a comment.
inline std::vector<std::string> read_people_list(const std::string& path) {
  std::ifstream in(path);
  FACENET_CHECK(in.good(), io_error, "cannot open identity list '" + path + "'");
  std::vector<std::string> names;
  long declared = -1;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    line = line.substr(0, line.find('#'));
    std::istringstream s(line);
    std::string first;
    if (!(s >> first)) continue;
    const bool numeric = std::all_of(first.begin(), first.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
    if (numeric && names.empty() && declared < 0) {
      declared = std::stol(first);
      continue;
    }
    names.push_back(first);
  }
  FACENET_CHECK(declared < 0 || declared == static_cast<long>(names.size()), format_error,
                path + ": header announces " + std::to_string(declared) + " people but the file lists " + std::to_string(names.size()));
  FACENET_CHECK(!names.empty(), format_error, path + ": no identities listed");
  return names;
}

class face_dataset {
 public:
  face_dataset() = default;
  explicit face_dataset(std::vector<identity> ids) : ids_(std::move(ids)) {
    for (identity& id : ids_) std::sort(id.images.begin(), id.images.end());
    std::sort(ids_.begin(), ids_.end(), [](const identity& a, const identity& b) { return a.name < b.name; });
  }

  // Every sub-folder of `root` holding at least `min_images` images is an identity; `people`, when
  // given, keeps only those names (each must exist).
  static face_dataset from_folder(const std::string& root, const std::vector<std::string>& people = {}, std::size_t min_images = 1,
                                  const std::vector<std::string>& extensions = default_image_extensions()) {
    namespace fs = std::filesystem;
    FACENET_CHECK(fs::is_directory(root), io_error, "dataset root '" + root + "' is not a directory");
    const std::set<std::string> wanted(people.begin(), people.end());
    std::vector<identity> ids;
    std::set<std::string> found;
    for (const fs::directory_entry& d : fs::directory_iterator(root)) {
      if (!d.is_directory()) continue;
      const std::string name = d.path().filename().string();
      if (!wanted.empty() && !wanted.count(name)) continue;
      found.insert(name);
      identity id{name, {}};
      for (const fs::directory_entry& f : fs::directory_iterator(d.path())) {
        std::string ext = f.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (f.is_regular_file() && std::find(extensions.begin(), extensions.end(), ext) != extensions.end())
          id.images.push_back(f.path().string());
      }
      if (id.images.size() >= min_images && !id.images.empty()) ids.push_back(std::move(id));
    }
    for (const std::string& p : wanted)
      FACENET_CHECK(found.count(p), io_error, "identity '" + p + "' from the identity list has no folder under '" + root + "'");
    FACENET_CHECK(!ids.empty(), io_error, "no identity folders with images under '" + root + "'");
    return face_dataset(std::move(ids));
  }

  const std::vector<identity>& identities() const noexcept { return ids_; }
  std::size_t size() const noexcept { return ids_.size(); }
  std::size_t num_images() const noexcept {
    std::size_t n = 0;
    for (const identity& id : ids_) n += id.images.size();
    return n;
  }
  // All images with their labels, identity-major.
  std::vector<sample> samples() const {
    std::vector<sample> s;
    for (std::size_t i = 0; i < ids_.size(); ++i)
      for (const std::string& p : ids_[i].images) s.push_back({p, static_cast<int>(i)});
    return s;
  }

 private:
  std::vector<identity> ids_;
};

}  // namespace facenet::data
