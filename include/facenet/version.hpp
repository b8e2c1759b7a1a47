// The library version. This file is the single source of truth: CMake reads the three numbers from it
// and meson.build refuses to configure when its own version string disagrees.
#pragma once

#define FACENET_VERSION_MAJOR 0
#define FACENET_VERSION_MINOR 1
#define FACENET_VERSION_PATCH 0

// One comparable number for preprocessor checks: 0.1.0 -> 100, 1.2.3 -> 10203.
#define FACENET_VERSION (FACENET_VERSION_MAJOR * 10000 + FACENET_VERSION_MINOR * 100 + FACENET_VERSION_PATCH)

#define FACENET_DETAIL_STRINGIFY_VALUE(x) #x
#define FACENET_DETAIL_STRINGIFY(x) FACENET_DETAIL_STRINGIFY_VALUE(x)
#define FACENET_VERSION_STRING                    \
  FACENET_DETAIL_STRINGIFY(FACENET_VERSION_MAJOR) \
  "." FACENET_DETAIL_STRINGIFY(FACENET_VERSION_MINOR) "." FACENET_DETAIL_STRINGIFY(FACENET_VERSION_PATCH)

namespace facenet {

inline constexpr int version_major = FACENET_VERSION_MAJOR;
inline constexpr int version_minor = FACENET_VERSION_MINOR;
inline constexpr int version_patch = FACENET_VERSION_PATCH;

// "major.minor.patch" of the headers this translation unit was compiled against.
inline constexpr const char* version_string() noexcept { return FACENET_VERSION_STRING; }

}  // namespace facenet
